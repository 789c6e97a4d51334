#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Pipeline

/// One HotpotQA question (distractor setting).
public struct HotpotQuestion: Sendable, Equatable {
    public struct Paragraph: Sendable, Equatable {
        public var title: String
        public var sentences: [String]
        /// What the retriever sees: the sentences joined with no separator (titles left out),
        /// as the reference builds it.
        public var text: String { sentences.joined() }
        public init(title: String, sentences: [String]) { self.title = title; self.sentences = sentences }
    }
    public var id: String
    public var question: String
    /// Absent in unlabelled test files.
    public var answer: String?
    public var supportingFacts: [(title: String, sentence: Int)]
    public var context: [Paragraph]
    public var type: String?
    public var level: String?

    public var paragraphs: [String] { context.map(\.text) }
    /// Titles of the paragraphs that hold supporting facts, in first-mention order.
    public var goldTitles: [String] {
        var out: [String] = []
        for f in supportingFacts where !out.contains(f.title) { out.append(f.title) }
        return out
    }

    public static func == (a: HotpotQuestion, b: HotpotQuestion) -> Bool {
        a.id == b.id && a.question == b.question && a.answer == b.answer && a.context == b.context && a.type == b.type
            && a.level == b.level && a.supportingFacts.elementsEqual(b.supportingFacts, by: { $0.title == $1.title && $0.sentence == $1.sentence })
    }

    /// The question as one JSON object in the official field layout.
    public var json: JSONValue {
        var o: [(key: String, value: JSONValue)] = [("_id", .string(id))]
        if let answer { o.append(("answer", .string(answer))) }
        o.append(("question", .string(question)))
        o.append(("supporting_facts", .array(supportingFacts.map { [.string($0.title), .number(Double($0.sentence))] })))
        o.append(("context", .array(context.map { [.string($0.title), .array($0.sentences.map(JSONValue.string))] })))
        if let type { o.append(("type", .string(type))) }
        if let level { o.append(("level", .string(level))) }
        return .object(o)
    }
}

/// Reads HotpotQA files: JSON Lines (one question a line, as the reference's splits) or the
/// official JSON arrays (`hotpot_dev_distractor_v1.json`). Every problem is reported with its
/// `file:line` and field; nothing is skipped silently.
public enum HotpotQA {
    /// The questions of a stage input: a `questions` artifact's `questions.jsonl`, or a file
    /// given by path.
    public static func load(questionsOf input: InputArtifact, requireAnswers: Bool = true) throws -> [HotpotQuestion] {
        try load(input.manifest.files["questions.jsonl"] != nil ? input.path(of: "questions.jsonl") : input.path, requireAnswers: requireAnswers)
    }

    /// The check of a user's questions file (`InputCheck`) for the stages that run dialogues:
    /// whole HotpotQA questions, read before anything runs.
    public static func inputCheck(requireAnswers: Bool = true) -> InputCheck {
        InputCheck("hotpotqa-questions-1" + (requireAnswers ? "" : "-unanswered")) { path in
            _ = try load(questionsFile(path), requireAnswers: requireAnswers)
        }
    }

    /// The questions file of an input path: the path, or a directory's `questions.jsonl`.
    static func questionsFile(_ path: String) -> String {
        FileIO.isDirectory(path) && FileIO.exists(path + "/questions.jsonl") ? path + "/questions.jsonl" : path
    }

    /// The questions in file order. `requireAnswers`: an item without `answer` is an error
    /// (sampling and scoring need the ground truth).
    public static func load(_ path: String, requireAnswers: Bool = true) throws -> [HotpotQuestion] {
        try parse(try JSONLines.text(path), file: path, requireAnswers: requireAnswers)
    }

    public static func parse(_ text: String, file: String, requireAnswers: Bool = true) throws -> [HotpotQuestion] {
        let firstSignificant = text.unicodeScalars.first { !PythonText.isSpace($0) && $0 != "\u{FEFF}" }
        var items: [(line: Int, value: JSONValue)] = []
        if firstSignificant == "[" {
            let doc: JSONParser.Document
            do { doc = try JSONParser.parseDocument(text) } catch {
                throw DataError(file: file, line: error.location.line, "invalid JSON at column \(error.location.column): \(error.message)")
            }
            for (i, v) in (doc.value.arrayValue ?? []).enumerated() {
                items.append((doc.locations[JSONPath.root.appending(index: i)]?.line ?? 1, v))
            }
        } else {
            items = try JSONLines.parse(text, file: file)
        }
        if items.isEmpty { throw DataError(file: file, line: nil, "no questions (the file is empty)") }
        var problems: [String] = []
        var out: [HotpotQuestion] = []
        var ids: [String: Int] = [:]
        for (line, v) in items {
            do {
                let q = try question(v, requireAnswers: requireAnswers)
                if let first = ids[q.id] { throw FieldError("'_id' \(q.id) repeats the question at line \(first)") }
                ids[q.id] = line
                out.append(q)
            } catch let e as FieldError {
                problems.append("\(file):\(line): \(e.message)")
                if problems.count >= 20 { break }
            }
        }
        if !problems.isEmpty {
            throw DataError(file: file, line: nil, "\(problems.count >= 20 ? "at least 20" : String(problems.count)) invalid question\(problems.count == 1 ? "" : "s"):\n  " + problems.joined(separator: "\n  "))
        }
        return out
    }

    struct FieldError: Error { var message: String; init(_ m: String) { message = m } }

    static func question(_ v: JSONValue, requireAnswers: Bool) throws -> HotpotQuestion {
        guard v.objectMembers != nil else { throw FieldError("expected a question object, found \(v.typeDescription)") }
        func string(_ key: String, required: Bool) throws -> String? {
            guard let x = v[key] else {
                if required { throw FieldError("missing field '\(key)'") }
                return nil
            }
            guard let s = x.stringValue else { throw FieldError("'\(key)' must be a string, found \(x.typeDescription)") }
            return s
        }
        let id = try string("_id", required: true)!
        let question = try string("question", required: true)!
        let answer = try string("answer", required: requireAnswers)
        let type = try string("type", required: false)
        let level = try string("level", required: false)
        guard let ctx = v["context"] else { throw FieldError("missing field 'context'") }
        guard let paragraphs = ctx.arrayValue else { throw FieldError("'context' must be an array of [title, [sentences]], found \(ctx.typeDescription)") }
        var context: [HotpotQuestion.Paragraph] = []
        for (i, p) in paragraphs.enumerated() {
            guard let pair = p.arrayValue, pair.count == 2, let title = pair[0].stringValue, let sentences = pair[1].arrayValue,
                  sentences.allSatisfy({ $0.stringValue != nil }) else {
                throw FieldError("'context[\(i)]' must be [title, [sentence, ...]] of strings")
            }
            context.append(.init(title: title, sentences: sentences.map { $0.stringValue! }))
        }
        var facts: [(title: String, sentence: Int)] = []
        if let sf = v["supporting_facts"] {
            guard let list = sf.arrayValue else { throw FieldError("'supporting_facts' must be an array of [title, sentence index]") }
            for (i, f) in list.enumerated() {
                guard let pair = f.arrayValue, pair.count == 2, let title = pair[0].stringValue, let n = pair[1].intValue, n >= 0 else {
                    throw FieldError("'supporting_facts[\(i)]' must be [title, sentence index]")
                }
                facts.append((title, n))
            }
        } else if requireAnswers {
            throw FieldError("missing field 'supporting_facts'")
        }
        return HotpotQuestion(id: id, question: question, answer: answer, supportingFacts: facts, context: context, type: type, level: level)
    }

    /// Questions as JSON Lines (the `questions` artifact's `questions.jsonl`).
    public static func jsonLines(_ questions: [HotpotQuestion]) -> String {
        questions.map { PythonJSON.dumps(PythonJSON.value($0.json), indent: nil) + "\n" }.joined()
    }
}
