#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import JSON
public import NN
public import Pipeline
public import LLM

/// A question to route: its text and, when known, its type (bridge, comparison).
public struct RoutingQuestion: Sendable, Equatable {
    public var text: String
    public var type: String?
    public init(_ text: String, type: String? = nil) { self.text = text; self.type = type }
}

/// A router's choice for one question: the action (one candidate per role) and the router's
/// distribution over every action of the space (what it would choose with what weight).
public struct RouteDecision: Sendable, Equatable {
    public var action: Int
    public var distribution: [Double]
    public init(action: Int, distribution: [Double]) { self.action = action; self.distribution = distribution }
    /// All weight on one action.
    public static func certain(_ action: Int, of space: ActionSpace) -> RouteDecision {
        RouteDecision(action: action, distribution: space.indices.map { $0 == action ? 1 : 0 })
    }
}

/// What turns question texts into embeddings for routers that read them (MiniLM's
/// `SentenceEncoder`, or a test's own function).
public protocol TextEmbedder: Sendable {
    func embed(_ texts: [String]) throws -> [[Float]]
}

extension SentenceEncoder: TextEmbedder {
    /// The encoder a stage embeds with, its threads and OpenBLAS's set from the stage's CPUs:
    /// an embedding's last bits depend on how a batch is split among threads, so they must not
    /// depend on what another stage of the same process set before (a Slurm job, alone in its
    /// process, then gives the bits of a local run).
    static func forStage(_ directory: String, _ context: StageContext) throws -> SentenceEncoder {
        try BLAS.shared().threads = context.threads
        let encoder = try SentenceEncoder(directory: directory)
        encoder.threads = context.threads
        return encoder
    }
}

/// A high-level router: maps questions to an assignment of candidates to roles. Every kind is
/// a directory (`router.json`, and `arrays.safetensors` for learned weights) that
/// `RouterArtifacts.load` reads back, so that any stage can route with any router.
public protocol QuestionRouter: Sendable {
    var space: ActionSpace { get }
    /// What the router is, for reports ("knn (k=10)").
    var label: String { get }
    /// Whether `route` needs question embeddings.
    var needsEmbeddings: Bool { get }
    /// One decision per question; `embeddings` (one per question) when `needsEmbeddings`.
    func route(_ questions: [RoutingQuestion], embeddings: [[Float]]?) throws -> [RouteDecision]
    /// `router.json` (with `kind`) and the arrays, written into `directory`.
    func save(directory: String) throws
}

/// A problem with a router artifact or its use, naming it.
public struct RouterError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reading and writing router directories.
public enum RouterArtifacts {
    /// Loads any router directory by its `router.json`'s `kind`; a decoder router's backbone
    /// goes into `engine`.
    public static func load(directory: String, engine: any Engine) throws -> any QuestionRouter {
        let path = directory + "/router.json"
        let json: JSONValue
        do { json = try JSONParser.parse(try FileIO.readString(path)) } catch {
            throw RouterError("\(path): not a router (\(error)); routers come from route-table or sft-train")
        }
        guard let kind = json["kind"]?.stringValue else { throw RouterError("\(path): no 'kind'") }
        let space = try spaceOf(json, path: path)
        let arrays = FileIO.exists(directory + "/arrays.safetensors") ? try SafeTensorsFile(path: directory + "/arrays.safetensors").all() : [:]
        switch kind {
        case TableRouter.kind: return try TableRouter(json: json, arrays: arrays, space: space, path: path)
        case DecoderRouter.kind: return try DecoderRouter.load(directory: directory, json: json, space: space, engine: engine)
        default: throw RouterError("\(path): unknown router kind '\(kind)' (known: \(TableRouter.kind), \(DecoderRouter.kind))")
        }
    }

    static func spaceOf(_ json: JSONValue, path: String) throws -> ActionSpace {
        guard let k = json["space"]?["candidates"]?.intValue, k >= 1,
              let roles = json["space"]?["roles"]?.arrayValue?.compactMap(\.stringValue), !roles.isEmpty else {
            throw RouterError("\(path): no action space ('space': {'candidates', 'roles'})")
        }
        return ActionSpace(candidates: k, roles: roles)
    }

    /// Writes `router.json` (the given fields, with `kind` and `space`) and the arrays.
    static func write(directory: String, kind: String, space: ActionSpace, fields: [(String, JSONValue)], arrays: [String: Tensor]) throws {
        let json = JSONValue.object([("kind", .string(kind)),
                                     ("space", ["candidates": .number(Double(space.candidates)), "roles": .array(space.roles.map(JSONValue.string))])]
                                    + fields)
        try FileIO.writeAtomically(json.pretty + "\n", to: directory + "/router.json")
        if !arrays.isEmpty { try SafeTensorsFile.write(arrays, to: directory + "/arrays.safetensors") }
    }
}

/// Routing questions (texts and types) from a questions file, keyed for score tables.
public enum RoutingQuestions {
    /// What a router or an evaluation needs of a question: its text, and its id, type and gold
    /// answer where the file has them. HotpotQA's other fields (context, supporting facts) are
    /// neither needed nor checked: a plain `{"id", "question", "type"}` line is a question.
    public struct Plain: Sendable {
        public var id: String?
        public var text: String
        public var type: String?
        public var gold: String?
        public init(id: String?, text: String, type: String?, gold: String?) { self.id = id; self.text = text; self.type = type; self.gold = gold }
    }

    /// The questions of a JSON Lines file (or a JSON array), each with a string `question`;
    /// `_id` or `id`, `type` and `answer` are read when present. Errors name `file:line`.
    public static func plain(_ path: String) throws -> [Plain] {
        let text = try JSONLines.text(path)
        let first = text.unicodeScalars.first { !PythonText.isSpace($0) && $0 != "\u{FEFF}" }
        var items: [(line: Int?, value: JSONValue)] = []
        if first == "[" {
            let v: JSONValue
            do { v = try JSONParser.parse(text) } catch { throw DataError(file: path, line: nil, "not JSON: \(error)") }
            items = (v.arrayValue ?? []).map { (nil, $0) }
        } else {
            items = try JSONLines.parse(text, file: path).map { ($0.line, $0.value) }
        }
        if items.isEmpty { throw DataError(file: path, line: nil, "no questions (the file is empty)") }
        return try items.enumerated().map { i, item in
            guard let q = item.value["question"]?.stringValue else {
                throw DataError(file: path, line: item.line, "question \(i): missing or non-string 'question' (a question needs its text; id, type and answer are optional)")
            }
            func string(_ k: String) -> String? { item.value[k].flatMap { $0.stringValue ?? $0.intValue.map(String.init) } }
            return Plain(id: string("_id") ?? string("id"), text: q, type: string("type"), gold: string("answer"))
        }
    }

    /// The check of a user's questions file (`InputCheck`) for routers, `score` and `evaluate`:
    /// plain questions, read before anything runs.
    public static let inputCheck = InputCheck("plain-questions-1") { path in _ = try plain(HotpotQA.questionsFile(path)) }

    /// Question text (spaces trimmed) → type, from a questions file (HotpotQA's, or plain).
    public static func types(_ path: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for q in try plain(path) { if let t = q.type { out[q.text.trimmingSpaces] = t } }
        return out
    }

    /// The questions file a stage reads types from: its `questions` input's, else the one an
    /// imported score table carries (`import` writes the prompts beside the table).
    public static func file(questions: InputArtifact?, scores: InputArtifact?) -> String? {
        if let questions { return questions.manifest.files["questions.jsonl"] != nil ? questions.path(of: "questions.jsonl") : questions.path }
        if let scores, scores.manifest.files["questions.jsonl"] != nil { return scores.path(of: "questions.jsonl") }
        return nil
    }

    /// The score matrix's questions, with their types when `types` knows them.
    public static func of(_ matrix: ScoreMatrix, types: [String: String]) -> [RoutingQuestion] {
        matrix.questions.map { RoutingQuestion($0, type: types[$0.trimmingSpaces]) }
    }
}
