public import NN
public import Pipeline
import JSON
import LLM

/// Question texts and their sentence embeddings, computed once by the `embed` stage and read by
/// every router stage and evaluation that needs them, so that three embedding routers and their
/// evaluation do not each embed the same table (on a RouterBench-sized table that was most of
/// the time: bench/routers).
///
/// Files: `embeddings.safetensors` (`embeddings`, [questions, dimension], float32),
/// `texts.jsonl` (each question's text, one JSON string a line, in the rows' order) and
/// `summary.json` (encoder, questions, dimension).
public struct QuestionEmbeddings: Sendable {
    /// The encoder's artifact digest (which model made them).
    public var encoder: String
    public var texts: [String]
    public var vectors: Tensor
    private var rowOf: [String: Int] = [:]

    public var dimension: Int { vectors.shape.count > 1 ? vectors.shape[1] : 0 }

    public init(encoder: String, texts: [String], vectors: [[Float]]) {
        self.encoder = encoder
        self.texts = texts
        self.vectors = Tensor(shape: [vectors.count, vectors.first?.count ?? 0], data: vectors.flatMap { $0 })
        index()
    }

    /// A text is looked up with its surrounding spaces trimmed (the encoder ignores them).
    private mutating func index() {
        for (i, t) in texts.enumerated() where rowOf[t.trimmingSpaces] == nil { rowOf[t.trimmingSpaces] = i }
    }

    public static let tensorName = "embeddings"

    public func write(directory: String) throws {
        try SafeTensorsFile.write([Self.tensorName: vectors], metadata: ["encoder": encoder], to: directory + "/embeddings.safetensors")
        try FileIO.writeAtomically(texts.map { JSONValue.string($0).canonical + "\n" }.joined(), to: directory + "/texts.jsonl")
        let summary: JSONValue = .object(["encoder": .string(encoder), "questions": .number(Double(texts.count)), "dimension": .number(Double(dimension))])
        try FileIO.writeAtomically(summary.pretty + "\n", to: directory + "/summary.json")
    }

    public init(directory: String) throws {
        let path = directory + "/embeddings.safetensors"
        do {
            let file = try SafeTensorsFile(path: path)
            vectors = try file.tensor(Self.tensorName)
            encoder = file.metadata["encoder"] ?? ""
        } catch { throw RouterError("\(path): not question embeddings (\(error)); they come from the embed stage") }
        let textsPath = directory + "/texts.jsonl"
        texts = try JSONLines.parse(try JSONLines.text(textsPath), file: textsPath).map { line in
            guard let t = line.value.stringValue else { throw DataError(file: textsPath, line: line.line, "expected a JSON string (a question's text)") }
            return t
        }
        guard vectors.shape.count == 2, vectors.shape[0] == texts.count else {
            throw RouterError("\(directory): \(texts.count) texts but embeddings of shape \(vectors.shape)")
        }
        index()
    }

    /// The embedding of each of `texts`; an error names the first text it lacks and how many.
    public func embeddings(of texts: [String], port: String) throws -> [[Float]] {
        let d = dimension
        var missing: [String] = []
        let rows = texts.map { t -> [Float] in
            guard let r = rowOf[t.trimmingSpaces] else { missing.append(t); return [] }
            return Array(vectors.data[(r * d)..<((r + 1) * d)])
        }
        if let first = missing.first {
            throw RouterError("input '\(port)' has no embedding of \(missing.count) of the \(texts.count) questions, the first \"\(first.prefix(80))\": give the embed stage the table this stage reads")
        }
        return rows
    }

    /// The embeddings a stage's routers read for `texts`: from its `embeddings` input (an
    /// `embed` stage's output) when it has one, else computed with its `encoder` input.
    public static func forStage(_ texts: [String], _ context: StageContext, needer: String) throws -> [[Float]] {
        if let input = context.inputs["embeddings"] {
            try BLAS.shared().threads = context.threads  // the routers' own products
            return try QuestionEmbeddings(directory: input.directory).embeddings(of: texts, port: "embeddings")
        }
        guard let encoder = context.inputs["encoder"] else {
            throw RouterError("\(needer) read question embeddings: give the stage an 'embeddings' input (an embed stage) or an 'encoder' input (models/all-MiniLM-L6-v2)")
        }
        context.progress.setStatus("embedding \(texts.count) questions")
        return try SentenceEncoder.forStage(encoder.directory, context).embed(texts)
    }
}
