public import Pipeline
import LLM
import JSON
import NN

/// The `embed` stage: the sentence embeddings of every question of its tables, once, for the
/// routers that read embeddings (kNN, logistic, matrix factorisation) and for `evaluate`, each
/// of which would otherwise embed the same questions itself. Inputs: `encoder`, and any number
/// of score tables or questions files under names of the user's choosing.
///
///     "embed": {"type": "embed", "inputs": {"encoder": "models/all-MiniLM-L6-v2", "train": "train", "test": "test"}},
///     "router_knn": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed"}, "params": {"method": "knn"}}
///
/// With `"engine": "torch"` (and `device`, `dtype`), the torch worker runs the encoder: on a
/// GPU, RouterBench's 36 000 prompts take seconds.
///
/// It embeds in chunks journaled as they finish, so an interrupted run resumes where it stopped.
public struct EmbedStage: StageType {
    public struct Params: StageParameters {
        @Param("questions embedded per chunk (the unit of progress and of resuming)") var chunk = 512
        /// Where the encoder runs: this program (cpu, the default) or the torch worker (a GPU).
        var engine = EngineParams()
        public init() {}
    }

    public static let name = "embed"
    public static let version = 2  // 2: fixed groups of 32 texts: the same bits on any number of threads
    public static let summary = "Sentence embeddings of the questions of score tables or questions files, computed once for the routers and evaluate."

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("encoder", kind: .model, help: "a sentence-transformers directory (models/all-MiniLM-L6-v2)")],
                   output: .embeddings, openInputKind: .any)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        (p.chunk < 1 ? [SpecProblem(path.appending("chunk"), "expected a positive integer, found \(p.chunk)")] : []) + p.engine.validate(at: path)
    }

    public static func preflight(_ p: Params, resources: [String: JSONValue], inputs: Set<String>) -> [String] { p.engine.preflight() }

    public static func figures(directory: String) -> [Figure] {
        guard let text = try? FileIO.readString(directory + "/summary.json"), let j = try? JSONParser.parse(text) else { return [] }
        return ["questions", "dimension"].compactMap { k in j[k]?.doubleValue.map { Figure(k, $0) } }
    }

    /// The texts of a table input: a score table's complete questions, or a questions file's.
    static func questionTexts(port: String, _ input: InputArtifact) throws -> [String] {
        if input.kind == .scoreTable || input.manifest.files["scores.jsonl"] != nil {
            return try ScoreMatrix(directory: input.directory).questions
        }
        if input.kind == .questions || input.kind == .any {
            return try RoutingQuestions.plain(RoutingQuestions.file(questions: input, scores: nil)!).map(\.text)
        }
        throw RouterError("input '\(port)' is a '\(input.kind)' artifact; embed reads score tables and questions files")
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        let ports = context.inputs.keys.filter { $0 != "encoder" }.sorted()
        guard !ports.isEmpty else { throw RouterError("embed has nothing to embed: give it score tables or questions files as inputs besides 'encoder'") }
        var texts: [String] = [], seen = Set<String>()
        for port in ports {
            for t in try questionTexts(port: port, context.inputs[port]!) where seen.insert(t.trimmingSpaces).inserted { texts.append(t) }
        }
        guard !texts.isEmpty else { throw RouterError("embed found no questions in \(ports.joined(separator: ", ")) (a score table's questions are those with every action)") }
        let encoder = try SentenceEncoder.forStage(context.inputs["encoder"]!.directory, context)
        // On the torch engine the worker runs the forward pass (tokens and settings from here).
        let torch = p.engine.kind == .torch ? try p.engine.makeEngine(context) as? TorchEngine : nil
        defer { torch?.worker.stop() }
        let device = torch?.placement.device(for: "encoder", trainable: false) ?? "cpu"
        let journal = try context.journal("chunks")
        let chunks = stride(from: 0, to: texts.count, by: p.chunk).map { $0..<min($0 + p.chunk, texts.count) }
        context.progress.setTotal(texts.count, unit: "questions")
        var vectors: [[Float]] = [], resumed = 0
        for (i, range) in chunks.enumerated() {
            try context.checkCancellation()
            let key = "\(i)/\(range.count)"
            if let done = journal.value(key), done.count == range.count * encoder.dimension * 4 {
                resumed += 1
                let floats = done.withUnsafeBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
                vectors += stride(from: 0, to: floats.count, by: encoder.dimension).map { Array(floats[$0..<($0 + encoder.dimension)]) }
            } else {
                let part = try torch.map { try encoder.embed(Array(texts[range]), on: $0, device: device) } ?? encoder.embedInGroups(Array(texts[range]))
                try journal.append(key: key, value: part.flatMap { $0 }.withUnsafeBytes { Array($0) })
                vectors += part
            }
            context.progress.advance(by: range.count)
        }
        if resumed > 0 { context.log("resumed \(resumed) of \(chunks.count) chunks from an interrupted run") }
        try QuestionEmbeddings(encoder: context.inputs["encoder"]!.digest.hex, texts: texts, vectors: vectors).write(directory: context.outputDirectory)
        context.log("\(texts.count) questions from \(ports.joined(separator: ", ")), \(encoder.dimension) numbers each")
    }
}
