#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
import NN
public import Pipeline

/// The `train-agent` stage: a small Llama-architecture candidate for the embedded default,
/// trained with the NN engine on the transcripts of `ExpertAgent` dialogues (both roles, the
/// embedded prompt set, mistakes and recoveries included) over generated questions. Its own
/// byte-level BPE tokenizer is trained on the same transcripts. Output kind `model`: a Hugging
/// Face model directory (config.json, model.safetensors, tokenizer.json) that the `local`
/// backend and `haps-pipe serve` load, plus `losses.jsonl`.
public struct TrainAgentStage: StageType {
    public struct Params: Decodable, Sendable {
        var layers: Int?
        var hidden_size: Int?
        var heads: Int?
        var kv_heads: Int?
        var intermediate_size: Int?
        var vocab_size: Int?
        var steps: Int
        var batch_size: Int?
        var lr: Double?
        var noise: Double?
        var mix: [String: Double]?
        var budget: Int?
        var max_length: Int?
        var checkpoint_every: Int?
        var fresh_worlds: Int?
        var fresh_questions: Int?
        var difficulty: String?
        var copy_steps: Int?
    }

    public static let name = "train-agent"
    public static let version = 3
    public static let summary = "Train a small candidate LLM on scripted expert dialogues over generated questions."
    public static let parameters = [
        ParameterInfo("layers", "decoder layers (default 2)"), ParameterInfo("hidden_size", "default 64"),
        ParameterInfo("heads", "default 4"), ParameterInfo("kv_heads", "default 2"), ParameterInfo("intermediate_size", "default 3 × hidden"),
        ParameterInfo("vocab_size", "its byte-level BPE vocabulary (default 768)"),
        ParameterInfo("steps", "optimisation steps"), ParameterInfo("batch_size", "turns per step (default 8)"),
        ParameterInfo("lr", "peak learning rate (default 0.003, cosine with 3% warm-up)"),
        ParameterInfo("noise", "share of the expert's searches that first go to a confusable entity (default 0.2)"),
        ParameterInfo("mix", "weights of the training turns: bridge, comparison (question types), student, teacher (roles); default 1 each"),
        ParameterInfo("budget", "search steps of the expert dialogues (default 3)"),
        ParameterInfo("max_length", "longest training sequence in tokens; longer turns are cut from the left (default 384)"),
        ParameterInfo("checkpoint_every", "steps between checkpoints (default 50)"),
        ParameterInfo("fresh_worlds", "extra generated worlds to train on, each with names of its own, so that copying pays and memorising does not (default 40)"),
        ParameterInfo("fresh_questions", "questions drawn from each fresh world (default 40)"),
        ParameterInfo("difficulty", "of the fresh worlds' distractors: easy, medium or hard (default hard)"),
        ParameterInfo("copy_steps", "of the steps, how many come first and train on copy exercises (a transcript window, then the same window again), where small models learn to copy in a few hundred steps (default 0)"),
    ]
    static let mixKeys = ["bridge", "comparison", "student", "teacher"]
    static let special = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("questions", kind: HotpotQA.kind, help: "generated training questions (synth-data)")], output: "model")
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        for (k, w) in p.mix ?? [:] {
            if !mixKeys.contains(k) { problems.append(SpecProblem(path.appending("mix").appending(k), "unknown weight" + NearestName.hintOrChoices(k, among: mixKeys))) }
            if w < 0 { problems.append(SpecProblem(path.appending("mix").appending(k), "expected a non-negative weight")) }
        }
        let hidden = p.hidden_size ?? 64, heads = p.heads ?? 4
        if heads < 1 || hidden % heads != 0 { problems.append(SpecProblem(path.appending("heads"), "hidden_size \(hidden) is not a multiple of heads \(heads)")) }
        if let kv = p.kv_heads, kv < 1 || heads % kv != 0 { problems.append(SpecProblem(path.appending("kv_heads"), "heads \(heads) is not a multiple of kv_heads \(kv)")) }
        if p.steps < 1 { problems.append(SpecProblem(path.appending("steps"), "expected a positive integer")) }
        if let v = p.vocab_size, v < 300 { problems.append(SpecProblem(path.appending("vocab_size"), "expected at least 300 (256 bytes, special tokens, merges)")) }
        if let n = p.noise, !(0...1).contains(n) { problems.append(SpecProblem(path.appending("noise"), "expected a number from 0 to 1")) }
        return problems
    }

    /// One training turn: the chat-templated prompt and the expert's reply.
    struct Turn { var prompt: String; var reply: String; var role: DialogueTurn.Role; var bridge: Bool }

    /// The expert's dialogues over `questions`, turn by turn.
    static func expertTurns(_ questions: [HotpotQuestion], noise: Double, seed: UInt64, budget: Int) throws -> [Turn] {
        let expert = ExpertAgent(questions: questions, noise: noise, seed: seed)
        let dialogue = Dialogue(prompts: .embedded, budget: budget, settings: GenerationSettings())
        var turns: [Turn] = []
        for q in questions {
            let r = try dialogue.run(question: q.question, paragraphs: q.paragraphs, student: expert, teacher: expert, retriever: LexicalRetriever())
            for t in r.turns {
                turns.append(Turn(prompt: ChatTemplate.llama3.render([.user(t.prompt)]), reply: t.reply, role: t.role, bridge: q.type != "comparison"))
            }
        }
        return turns
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        var questions = try HotpotQA.load(context.inputs["questions"]!.path(of: "questions.jsonl"))
        // Fresh worlds: new names every few questions, so the model must copy entities from the
        // question and the paragraphs rather than recall them.
        let perWorld = p.fresh_questions ?? 40
        for w in 0..<(p.fresh_worlds ?? 40) {
            var generator = SynthQuestions(world: SynthWorld(people: 40, seed: context.seed &+ 1_000_003 &* UInt64(w + 1)))
            generator.difficulty = SynthQuestions.Difficulty(rawValue: p.difficulty ?? "hard") ?? .hard
            questions += generator.questions(perWorld, seed: context.seed &+ UInt64(w))
        }
        let turns = try expertTurns(questions, noise: p.noise ?? 0.2, seed: context.seed, budget: p.budget ?? 3)
        // Tokenizer: byte-level BPE trained on the transcripts (seeded sample, deterministic).
        var corpus = turns.map { $0.prompt + $0.reply }
        if corpus.count > 3000 {
            var rng = SeededRandom(seed: context.seed)
            corpus.shuffle(using: &rng)
            corpus = Array(corpus.prefix(3000))
        }
        let tokenizerJSON = BPETrainer.train(corpus, vocabularySize: p.vocab_size ?? 768, specialTokens: special)
        let tokenizer = try BPETokenizer(json: tokenizerJSON, path: "tokenizer.json")
        let eot = tokenizer.addedTokens["<|eot_id|>"]!, end = tokenizer.addedTokens["<|end_of_text|>"]!
        let maxLength = p.max_length ?? 384
        // Examples: prompt tokens as context, reply + <|eot_id|> as targets, weighted by the mix.
        let mix = p.mix ?? [:]
        var examples: [(tokens: [Int], targetsFrom: Int)] = [], weights: [Double] = []
        for t in turns {
            let w = (mix[t.bridge ? "bridge" : "comparison"] ?? 1) * (mix[t.role == .student ? "student" : "teacher"] ?? 1)
            guard w > 0 else { continue }
            var prompt = tokenizer.encode(t.prompt)
            let reply = tokenizer.encode(t.reply) + [eot]
            if prompt.count + reply.count > maxLength { prompt = Array(prompt.suffix(max(1, maxLength - reply.count))) }
            examples.append((prompt + reply, prompt.count))
            weights.append(w)
        }
        guard !examples.isEmpty else { throw DataError(file: "train-agent", line: nil, "the mix leaves no training turns") }
        let vocab = tokenizer.vocabularySize
        let hidden = p.hidden_size ?? 64
        var config = DecoderConfig(family: .llama, vocabSize: vocab, hiddenSize: hidden, intermediateSize: p.intermediate_size ?? 3 * hidden,
                                   layers: p.layers ?? 2, heads: p.heads ?? 4, kvHeads: p.kv_heads ?? 2, ropeTheta: 10000,
                                   bosTokenID: tokenizer.addedTokens["<|begin_of_text|>"], eosTokenIDs: [eot, end])
        config.rmsEps = 1e-5
        let steps = p.steps, size = p.batch_size ?? 8
        try BLAS.shared().threads = context.threads
        let trainer = DecoderTrainer(model: try .randomlyInitialised(config, seed: context.seed), learningRate: Float(p.lr ?? 0.003),
                                     schedule: .cosine(warmup: max(1, steps * 3 / 100), total: steps))
        trainer.threads = context.threads
        let losses = try context.journal("losses")
        if let (step, state) = context.checkpoints.latest() {
            try trainer.restore(state)
            context.log("resuming from the checkpoint of step \(step)")
        }
        // Weighted sampling of examples per step, from (seed, step): the same batches on resume.
        var cumulative: [Double] = [], total = 0.0
        for w in weights { total += w; cumulative.append(total) }
        func batch(_ step: Int) -> [Int] {
            var rng = SeededRandom(seed: context.seed, stream: UInt64(step))
            return (0..<size).map { _ in
                let u = Double(rng.next() >> 11) / Double(1 << 53) * total
                var lo = 0, hi = cumulative.count - 1
                while lo < hi { let mid = (lo + hi) / 2; if cumulative[mid] > u { hi = mid } else { lo = mid + 1 } }
                return lo
            }
        }
        // Copy exercises: [bos] window [eot] window, targets on the repeat. This is what the
        // dialogues need (names from the question and the paragraphs into Search[...] and
        // Finish[...]), learnt on its own first, where the signal is not diluted.
        let copySteps = min(p.copy_steps ?? 0, steps), bos = tokenizer.addedTokens["<|begin_of_text|>"]!
        func copyExercises(_ step: Int) -> [(tokens: [Int], targetsFrom: Int)] {
            var rng = SeededRandom(seed: context.seed ^ 0xC0FFEE, stream: UInt64(step))
            return (0..<size).map { _ in
                let source = examples[Int(rng.next() % UInt64(examples.count))].tokens
                let length = min(source.count, 16 + Int(rng.next() % 48))
                let start = Int(rng.next() % UInt64(source.count - length + 1))
                let window = Array(source[start..<(start + length)])
                return ([bos] + window + [eot] + window, length + 2)
            }
        }
        context.log("\(examples.count) training turns from \(questions.count) questions; vocabulary \(vocab); \(steps) steps of \(size)")
        context.progress.setTotal(steps, unit: "steps")
        context.progress.resume(completed: trainer.step)
        let started = Date()
        var tokensSeen = 0
        let every = max(1, p.checkpoint_every ?? 50)
        while trainer.step < steps {
            try context.checkCancellation()
            let step = trainer.step
            let picked = step < copySteps ? copyExercises(step) : batch(step).map { examples[$0] }
            let loss = try trainer.train(picked.map(\.tokens), targetsFrom: picked.map(\.targetsFrom))
            tokensSeen += picked.reduce(0) { $0 + $1.tokens.count }
            if !losses.contains("s\(step)") { try losses.append(key: "s\(step)", json: .number(Double(loss))) }
            let elapsed = Date().timeIntervalSince(started)
            context.progress.advance()
            context.progress.setStatus("loss \(Format.fixed(Double(loss), 3))" + (elapsed > 0.5 ? ", \(Int(Double(tokensSeen) / elapsed)) tokens/s" : ""))
            if trainer.step % every == 0 || trainer.step == steps { try context.checkpoints.save(step: trainer.step, state: try trainer.state()) }
        }
        try trainer.model.save(directory: context.outputDirectory)
        try FileIO.writeAtomically(tokenizerJSON.canonical + "\n", to: context.outputDirectory + "/tokenizer.json")
        var log = ""
        for s in 0..<steps { if let l = losses.json("s\(s)") { log += JSONValue.object(["step": .number(Double(s)), "loss": l]).canonical + "\n" } }
        try FileIO.writeAtomically(log, to: context.outputDirectory + "/losses.jsonl")
        context.log("trained \(steps) steps: loss \(Format.fixed(losses.json("s0")?.doubleValue ?? .nan, 3)) → \(Format.fixed(losses.json("s\(steps - 1)")?.doubleValue ?? .nan, 3))")
    }
}
