import ArgumentParser
import JSON
import LLM
import NN
import Pipeline

/// `haps-pipe generate`: run a local model directory on the NN engine, for checking a model or
/// a LoRA update by hand (greedy unless a temperature is given).
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate with a local Hugging Face model directory (Llama, Qwen2, Mistral) on the CPU engine.",
        discussion: """
            The prompt is raw text (encoded with the directory's tokenizer.json, no chat template) or \
            token ids. Greedy by default; generation stops after the model's end-of-sequence token \
            unless --ignore-eos. --json prints {"ids", "logprobs", "text"}: each generated token's \
            log-probability under the distribution it was drawn from (log-softmax when greedy; \
            temperature and top-p renormalised when sampling).

            Examples:
              haps-pipe generate --model models/tiny --prompt "Paris is the capital of" --max-new-tokens 8
              haps-pipe generate --model models/tiny --prompt-ids 0,17,42 --max-new-tokens 12 --json
              haps-pipe generate --model models/tiny --prompt-ids 0,17 --lora update.safetensors --alpha 0.01 --layers 1 --json
            """)

    @Option(help: ArgumentHelp("Model directory (config.json, *.safetensors, tokenizer.json).", valueName: "dir")) var model: String
    @Option(help: "Prompt text (needs tokenizer.json).") var prompt: String?
    @Option(help: ArgumentHelp("Prompt token ids, comma-separated.", valueName: "ids")) var promptIds: String?
    @Option(help: "Tokens to generate at most.") var maxNewTokens: Int = 32
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0
    @Option(help: "Nucleus mass when sampling.") var topP: Float = 1
    @Option(help: "Seed of the sampler.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("A LoRA update: safetensors with tensors A [hidden×r] and B [r×hidden].", valueName: "file")) var lora: String?
    @Option(help: "Scale of the LoRA update.") var alpha: Float = 0.01
    @Option(help: "Apply the update to o_proj of this many last layers.") var layers: Int = 1
    @Flag(help: "Do not stop at the end-of-sequence token.") var ignoreEos = false
    @Flag(help: "Print one JSON object: ids, logprobs, text.") var json = false
    @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int?

    func run() throws {
        do {
            guard (prompt == nil) != (promptIds == nil) else { throw UsageError("give either --prompt TEXT or --prompt-ids 1,2,3") }
            guard maxNewTokens >= 0 else { throw UsageError("--max-new-tokens must be at least 0") }
            guard temperature >= 0, topP > 0, topP <= 1 else { throw UsageError("--temperature must be ≥ 0 and --top-p in (0, 1]") }
            if let threads { try BLAS.shared().threads = threads }
            let m = try DecoderModel(directory: model)
            let tokenizerPath = model + "/tokenizer.json"
            let tokenizer = FileIO.exists(tokenizerPath) ? try BPETokenizer(path: tokenizerPath) : nil
            let ids: [Int]
            if let prompt {
                guard let tokenizer else { throw UsageError("\(model) has no tokenizer.json: give --prompt-ids instead of --prompt") }
                ids = tokenizer.encode(prompt)
            } else {
                ids = try promptIds!.split(separator: ",").map { part in
                    guard let i = Int(part.trimmingCharacters(in: " ")) else { throw UsageError("--prompt-ids: '\(part)' is not an integer") }
                    return i
                }
            }
            guard !ids.isEmpty else { throw UsageError("the prompt is empty") }
            var update: LoRAUpdate?
            if let lora {
                let f = try SafeTensorsFile(path: lora)
                let a = try f.tensor("A"), b = try f.tensor("B")
                guard a.shape.count == 2, b.shape.count == 2, a.shape[0] == m.config.hiddenSize, b.shape[1] == m.config.heads * m.config.headDim,
                      a.shape[1] == b.shape[0] else {
                    throw UsageError("\(lora): A is \(a.shape) and B \(b.shape); expected [\(m.config.hiddenSize), r] and [r, \(m.config.heads * m.config.headDim)]")
                }
                guard layers >= 1 && layers <= m.config.layers else { throw UsageError("--layers must be between 1 and \(m.config.layers)") }
                update = LoRAUpdate(a: a, b: b, alpha: alpha, layers: layers)
            }
            let request = GenerationRequest(prompt: ids, maxNewTokens: maxNewTokens, temperature: temperature, topP: topP, seed: seed,
                                            stopTokens: ignoreEos ? [] : Set(m.config.eosTokenIDs), lora: update)
            let result = try m.generate([request])[0]
            let text = tokenizer?.decode(result.ids) ?? ""
            if json {
                let out: JSONValue = ["ids": .array(result.ids.map { .number(Double($0)) }),
                                      "logprobs": .array(result.logprobs.map { .number(Double($0)) }),
                                      "text": .string(text), "finish_reason": .string(result.finishReason)]
                print(out.canonical)
            } else {
                print(tokenizer == nil ? result.ids.map(String.init).joined(separator: ",") : text)
            }
        } catch { throw ErrorOutput.fail(error) }
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return s
    }
}
