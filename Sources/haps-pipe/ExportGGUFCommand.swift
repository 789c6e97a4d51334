import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LLM
import Pipeline

/// `haps-pipe export-gguf`: a candidate in llama.cpp's format (docs/engine.md, bench/interop).
struct ExportGGUF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-gguf",
        abstract: "Write a Llama-architecture model as GGUF (F32), for llama.cpp and other GGUF engines.",
        discussion: """
            MODEL is a model directory (config.json, model.safetensors, tokenizer.json), or a \
            stage whose output is one (STAGE or PIPELINE/STAGE, looked up in --store). The file \
            holds llama.cpp's names and layouts (q/k rows in GGML's rotary order), the byte-level \
            BPE tokenizer and the Llama 3 chat template.

            Example:
              haps-pipe export-gguf agent_a agent-a.gguf
              python -m llama_cpp.server --model agent-a.gguf --port 2024
            """)

    @Argument(help: ArgumentHelp("A model directory, or a stage whose output is one.", valueName: "model")) var model: String
    @Argument(help: ArgumentHelp("The GGUF file to write.", valueName: "output")) var output: String
    @Option(help: "The model's name in the file (default: the directory's or stage's name).") var name: String?
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            var directory = model
            if !FileIO.isDirectory(model) {
                let store = try storeOptions.open()
                directory = try store.materialize(try RefLookup.artifact(model, pipeline: nil, in: store))
            }
            let bytes = try GGUFExport.bytes(ofModelIn: directory, name: name ?? Path.lastComponent(model))
            try FileIO.writeAtomically(bytes, to: output)
            FileIO.writeStderr("wrote \(output) (\(bytes.count) bytes)\n")
        } catch { throw ErrorOutput.fail(error) }
    }
}
