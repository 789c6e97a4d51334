/// The project's own wording. Kept identical to the files in `prompts/standard/` (a test checks),
/// which users copy and edit.
extension PromptSet {
    public static let standard: PromptSet = {
        do {
            return try PromptSet(
                studentThink: """
                    You are a student answering a multi-hop question by searching a small set of paragraphs.
                    Question: {question}
                    What you know so far: {context}
                    Latest observation: {observation}
                    {budget}

                    Reply in exactly this form:
                    Thought: <your reasoning about what is still missing>
                    Action: Search[<entity to look up>] or Finish[<short answer>]

                    """,
                studentSummarize: """
                    You are a student keeping notes while answering a multi-hop question.
                    Question: {question}
                    Your notes so far: {context}
                    Observation: {observation}
                    Your last thought: {thought}
                    Your last action: {action}

                    Rewrite your notes to keep every fact that helps answer the question, in a few sentences.
                    Reply in exactly this form:
                    Summary: <your updated notes>

                    """,
                teacherThink: """
                    You are a teacher reviewing a student who answers a multi-hop question by searching paragraphs.
                    Question: {question}
                    What you know so far: {context}
                    Latest observation: {observation}

                    Judge the student's last step. If it is on track, say how to continue; if not, say what to
                    search for instead. Reply in exactly this form:
                    Thought: <your advice to the student>
                    Action: Continue[] or Rethink[]

                    """,
                teacherSummarize: """
                    You are a teacher keeping notes on a student's progress on a multi-hop question.
                    Question: {question}
                    Your notes so far: {context}
                    Observation: {observation}
                    Your last advice: {thought}
                    Your last verdict: {action}

                    Rewrite your notes to keep what the student has found and what is still missing, in a few sentences.
                    Reply in exactly this form:
                    Summary: <your updated notes>

                    """,
                sentences: [
                    "no_context": "Nothing yet.",
                    "start_observation": "You have not searched yet.",
                    "must_finish": "You have no searches left: you must answer now with Finish[<answer>].",
                    "may_search": "You may search again with Search[<entity>] or answer with Finish[<answer>].",
                    "invalid_thought": "The reply did not follow the Thought/Action format.",
                    "invalid_action": "Invalid action.",
                    "summary_failed": "(The last summary could not be read.) ",
                    "cant_parse": "Can't parse action {action}",
                    "student_observation": "Search Result: {student} Teacher's Advice: {teacher}",
                    "teacher_first_observation": "Student's Action: {student}",
                    "teacher_observation": "Previous Advice: {teacher} Student's Action: {student}",
                ])
        } catch {
            fatalError("the standard prompt set is invalid: \(error)")
        }
    }()
}
