public import Pipeline

/// The wording of the dialogue: four templates and the fixed sentences (docs/sampling.md and the reference's dialogue code), with
/// Python `str.format` placeholders. The project ships its own wording (`PromptSet.standard`,
/// also in `prompts/standard/`); `load(directory:)` reads a user's files instead, so the
/// reference's own prompt files work unchanged. The content's digest is part of stage keys.
public struct PromptSet: Sendable, Equatable {
    public var studentThink: String
    public var studentSummarize: String
    public var teacherThink: String
    public var teacherSummarize: String
    public var sentences: [String: String]

    /// The fixed sentences and observation templates, by name.
    public static let sentenceNames = [
        "no_context",             // the initial context of both agents
        "start_observation",      // the student's first observation
        "must_finish",            // {budget} when the student must answer now
        "may_search",             // {budget} otherwise
        "invalid_thought",        // thought when a reply has no Thought:/Action:
        "invalid_action",         // action in that case
        "summary_failed",         // put before the previous context when a summary cannot be parsed
        "cant_parse",             // the message of an unusable action; {action}
        "student_observation",    // {student} {teacher}: "action message" of each agent's last step
        "teacher_first_observation", // {student}
        "teacher_observation",    // {teacher} {student}
    ]

    /// Fields each template may use (Python raises KeyError on any other).
    static let allowedFields: [String: Set<String>] = [
        "student_think": ["context", "question", "observation", "budget"],
        "teacher_think": ["context", "question", "observation"],
        "student_summarize": ["question", "context", "observation", "thought", "action"],
        "teacher_summarize": ["question", "context", "observation", "thought", "action"],
        "must_finish": [], "may_search": [], "no_context": [], "start_observation": [], "invalid_thought": [],
        "invalid_action": [], "summary_failed": [], "cant_parse": ["action"],
        "student_observation": ["student", "teacher"], "teacher_first_observation": ["student"],
        "teacher_observation": ["teacher", "student"],
    ]

    public init(studentThink: String, studentSummarize: String, teacherThink: String, teacherSummarize: String,
                sentences: [String: String]) throws(PythonFormat.Failure) {
        self.studentThink = studentThink; self.studentSummarize = studentSummarize
        self.teacherThink = teacherThink; self.teacherSummarize = teacherSummarize
        self.sentences = sentences
        try validate()
    }

    /// Every template parses and uses only the fields it is given; every sentence is present.
    public func validate() throws(PythonFormat.Failure) {
        let named = [("student_think", studentThink), ("teacher_think", teacherThink),
                     ("student_summarize", studentSummarize), ("teacher_summarize", teacherSummarize)]
            + PromptSet.sentenceNames.map { ($0, sentences[$0] ?? "") }
        for name in PromptSet.sentenceNames where sentences[name] == nil {
            throw PythonFormat.Failure(message: "prompt set: missing sentence '\(name)'")
        }
        for (name, text) in named {
            let fields: [String]
            do { fields = try PythonFormat.fields(text) } catch {
                throw PythonFormat.Failure(message: "prompt set: \(name): \(error.message)")
            }
            for f in fields where !PromptSet.allowedFields[name]!.contains(f) {
                throw PythonFormat.Failure(message: "prompt set: \(name) uses {\(f)}, which it is not given; it may use " +
                                           (PromptSet.allowedFields[name]!.isEmpty ? "no fields" : PromptSet.allowedFields[name]!.sorted().map { "{\($0)}" }.joined(separator: ", ")))
            }
        }
    }

    public func sentence(_ name: String, _ values: [String: String] = [:]) throws(PythonFormat.Failure) -> String {
        try PythonFormat.format(sentences[name]!, values)
    }

    /// Digest of the whole content (templates and sentences), for stage keys.
    public var digest: Digest {
        Digest.of(string: JSONValue.object([
            "student_think": .string(studentThink), "student_summarize": .string(studentSummarize),
            "teacher_think": .string(teacherThink), "teacher_summarize": .string(teacherSummarize),
            "sentences": .object(sentences.mapValues(JSONValue.string)),
        ]).canonical)
    }

    static let files = ["student_think": "student_think.txt", "student_summarize": "student_summarize.txt",
                        "teacher_think": "teacher_think.txt", "teacher_summarize": "teacher_summarize.txt"]

    /// The reference's layout: `prompt/{student,teacher}/prompt1.txt` (think) and `prompt2.txt`
    /// (summarize), under `directory` or with `directory` being `prompt/` itself.
    static let referenceFiles = ["student_think": "student/prompt1.txt", "student_summarize": "student/prompt2.txt",
                                 "teacher_think": "teacher/prompt1.txt", "teacher_summarize": "teacher/prompt2.txt"]

    /// Reads a prompt set from a directory in either layout:
    /// - ours: `student_think.txt`, `student_summarize.txt`, `teacher_think.txt`,
    ///   `teacher_summarize.txt`;
    /// - the reference's: `prompt/student/prompt1.txt` (think), `prompt/student/prompt2.txt`
    ///   (summarize), the same under `prompt/teacher/` (or `DIR` may be the `prompt/` folder);
    /// and in both, an optional `sentences.json` (an object of the sentence names above; names it
    /// omits keep the standard wording), where the reference's fixed sentences go.
    public static func load(directory: String) throws -> PromptSet {
        let base: String, layout: [String: String]
        if FileIO.exists(directory + "/prompt/student/prompt1.txt") { (base, layout) = (directory + "/prompt", referenceFiles) }
        else if FileIO.exists(directory + "/student/prompt1.txt") { (base, layout) = (directory, referenceFiles) }
        else { (base, layout) = (directory, files) }
        func text(_ name: String) throws -> String {
            do { return try FileIO.readString(base + "/" + layout[name]!) } catch {
                throw PythonFormat.Failure(message: "prompt set \(directory): cannot read \(base)/\(layout[name]!): \(error.reason)")
            }
        }
        var sentences = standard.sentences
        if FileIO.exists(directory + "/sentences.json") {
            let v = try JSONParser.parse(try FileIO.readString(directory + "/sentences.json"))
            for (k, s) in v.objectMembers ?? [] {
                guard sentenceNames.contains(k) else {
                    throw PythonFormat.Failure(message: "prompt set \(directory)/sentences.json: unknown sentence '\(k)'" + NearestName.hint(k, among: sentenceNames))
                }
                guard let str = s.stringValue else { throw PythonFormat.Failure(message: "prompt set \(directory)/sentences.json: '\(k)' must be a string") }
                sentences[k] = str
            }
        }
        return try PromptSet(studentThink: try text("student_think"), studentSummarize: try text("student_summarize"),
                             teacherThink: try text("teacher_think"), teacherSummarize: try text("teacher_summarize"), sentences: sentences)
    }
}
