public import LLM

/// One model call of a dialogue, kept in the transcript.
public struct DialogueTurn: Sendable, Equatable {
    public enum Role: String, Sendable { case student, teacher }
    public enum Call: String, Sendable { case think, summarize }
    public var step: Int
    public var role: Role
    public var call: Call
    public var prompt: String
    public var reply: String
    public var promptTokens: Int
    public var completionTokens: Int
}

/// How a dialogue ended.
public struct DialogueResult: Sendable, Equatable {
    /// The answer ("" when the student did not finish within the budget).
    public var answer: String
    /// Whether the student ended with Finish[...].
    public var finished: Bool
    public var turns: [DialogueTurn]
    public var promptTokens: Int { turns.reduce(0) { $0 + $1.promptTokens } }
    public var completionTokens: Int { turns.reduce(0) { $0 + $1.completionTokens } }
}

/// The teacher/student dialogue of docs/sampling.md and the reference's dialogue code, exactly: turn order, parsing, the
/// `Search[`/`Finish[` slicing, fall-backs and stop rules, given the same model outputs.
///
///     let r = try Dialogue(prompts: .standard, budget: 3).run(question: q.question, paragraphs: q.paragraphs,
///                                                              student: llama, teacher: qwen, retriever: bm25)
///     r.answer
///
/// A question costs at most budget+1 student think calls and budget of each other call.
public struct Dialogue: Sendable {
    public var prompts: PromptSet
    public var budget: Int
    public var settings: GenerationSettings
    /// Told each call as it completes (a server streams the turns); nil: nobody is told.
    public var onTurn: (@Sendable (DialogueTurn) -> Void)? = nil

    /// The reference's search budget.
    public static let defaultBudget = 3

    public init(prompts: PromptSet = .standard, budget: Int = Dialogue.defaultBudget, settings: GenerationSettings = .reference) {
        self.prompts = prompts; self.budget = budget; self.settings = settings
    }

    /// A failed model call ends the question (as in the reference); it carries the transcript so far.
    public struct ModelCallFailed: Error, CustomStringConvertible {
        public var role: DialogueTurn.Role
        public var step: Int
        public var underlying: any Error
        public var turns: [DialogueTurn]
        public var description: String { "the \(role.rawValue) model failed at step \(step): \(underlying)" }
    }

    public func run(question: String, paragraphs: [String], student: any ChatModel, teacher: any ChatModel,
                    retriever: any Retriever) throws -> DialogueResult {
        var turns: [DialogueTurn] = []
        func call(_ model: any ChatModel, _ role: DialogueTurn.Role, _ kind: DialogueTurn.Call, step: Int, _ prompt: String) throws -> String {
            let reply: ChatReply
            // The dialogue with the most calls still to make goes first when requests queue for a
            // server: dialogues then end together, and no server idles at the end of a run.
            var settings = self.settings
            settings.priority = -turns.count
            do { reply = try model.chat([.user(prompt)], settings: settings) } catch {
                throw ModelCallFailed(role: role, step: step, underlying: error, turns: turns)
            }
            turns.append(DialogueTurn(step: step, role: role, call: kind, prompt: prompt, reply: reply.text,
                                      promptTokens: reply.promptTokens, completionTokens: reply.completionTokens))
            onTurn?(turns[turns.count - 1])
            return ReplyParser.strip(reply.text)
        }
        func joined(_ pair: (action: String, message: String)) -> String { pair.action + " " + pair.message }

        var studentContext = try prompts.sentence("no_context")
        var teacherContext = studentContext
        var lastStudent: (action: String, message: String)?
        var lastTeacher: (action: String, message: String)?
        var step = 0
        while true {
            let stop = step >= budget
            let observation: String
            if let s = lastStudent, let t = lastTeacher {
                observation = try prompts.sentence("student_observation", ["student": joined(s), "teacher": joined(t)])
            } else {
                observation = try prompts.sentence("start_observation")
            }
            let thinkPrompt = try PythonFormat.format(prompts.studentThink, [
                "context": studentContext, "question": question, "observation": observation,
                "budget": try prompts.sentence(stop ? "must_finish" : "may_search"),
            ])
            let (thought, action) = try parseThink(try call(student, .student, .think, step: step, thinkPrompt))

            var answer: String?
            var message: String
            if stop && !Dialogue.startsWith(action, "Finish") {
                message = try prompts.sentence("cant_parse", ["action": action])
            } else if Dialogue.startsWith(action, "Search") {
                let entity = Dialogue.slice(action)
                do { message = try retriever.retrieve(entity: entity, paragraphs: paragraphs) } catch {
                    message = String(describing: error)  // the reference passes the error text on
                }
            } else if Dialogue.startsWith(action, "Finish") {
                answer = Dialogue.slice(action)
                return DialogueResult(answer: answer!, finished: true, turns: turns)
            } else {
                message = try prompts.sentence("cant_parse", ["action": action])
            }
            if stop { return DialogueResult(answer: answer ?? "", finished: false, turns: turns) }

            lastStudent = (action, message)
            let summarizePrompt = try PythonFormat.format(prompts.studentSummarize, [
                "question": question, "context": studentContext, "observation": observation, "thought": thought, "action": action,
            ])
            studentContext = try newContext(try call(student, .student, .summarize, step: step, summarizePrompt), previous: studentContext)

            let teacherObservation: String
            if let t = lastTeacher {
                teacherObservation = try prompts.sentence("teacher_observation", ["teacher": joined(t), "student": joined((action, message))])
            } else {
                teacherObservation = try prompts.sentence("teacher_first_observation", ["student": joined((action, message))])
            }
            let teacherPrompt = try PythonFormat.format(prompts.teacherThink, [
                "context": teacherContext, "question": question, "observation": teacherObservation,
            ])
            let (advice, verdict) = try parseThink(try call(teacher, .teacher, .think, step: step, teacherPrompt))
            lastTeacher = (verdict, advice)
            let teacherSummarize = try PythonFormat.format(prompts.teacherSummarize, [
                "question": question, "context": teacherContext, "observation": teacherObservation, "thought": advice, "action": verdict,
            ])
            teacherContext = try newContext(try call(teacher, .teacher, .summarize, step: step, teacherSummarize), previous: teacherContext)
            step += 1
        }
    }

    func parseThink(_ reply: String) throws -> (String, String) {
        if let p = ReplyParser.thoughtAndAction(reply) { return (p.thought, p.action) }
        return (try prompts.sentence("invalid_thought"), try prompts.sentence("invalid_action"))
    }

    func newContext(_ reply: String, previous: String) throws -> String {
        if let s = ReplyParser.summary(reply) { return s }
        return try prompts.sentence("summary_failed") + previous
    }

    /// `action.startswith(prefix)`, by code points.
    static func startsWith(_ s: String, _ prefix: String) -> Bool {
        s.unicodeScalars.starts(with: prefix.unicodeScalars)
    }

    /// Python's `action[7:-1]` in code points.
    static func slice(_ s: String) -> String {
        let a = Array(s.unicodeScalars)
        let start = min(7, a.count), end = max(a.count - 1, 0)
        return end <= start ? "" : String(String.UnicodeScalarView(a[start..<end]))
    }
}
