/// The compact prompt set of the embedded default (`prompts/embedded/`): the same four
/// templates and sentences as the standard set, in as few tokens as possible, for the small
/// candidates the pipeline trains. Kept identical to the files (a test checks).
extension PromptSet {
    public static let embedded: PromptSet = {
        do {
            return try PromptSet(
                studentThink: "Q: {question}\nNotes: {context}\nSeen: {observation}\n{budget}\nThought: <reason>\nAction: Search[<entity>] or Finish[<answer>]\n",
                studentSummarize: "Q: {question}\nNotes: {context}\nSeen: {observation}\nDid: {action}\nSummary: <notes>\n",
                teacherThink: "Teach. Q: {question}\nNotes: {context}\nSeen: {observation}\nThought: <advice>\nAction: Continue[] or Rethink[]\n",
                teacherSummarize: "Teach. Q: {question}\nNotes: {context}\nSeen: {observation}\nSaid: {action}\nSummary: <notes>\n",
                sentences: [
                    "no_context": "none",
                    "start_observation": "start",
                    "must_finish": "Finish now.",
                    "may_search": "Search or finish.",
                    "invalid_thought": "bad reply",
                    "invalid_action": "bad action",
                    "summary_failed": "(lost notes) ",
                    "cant_parse": "Can't parse {action}",
                    "student_observation": "Found: {student} Advice: {teacher}",
                    "teacher_first_observation": "Student: {student}",
                    "teacher_observation": "Advice: {teacher} Student: {student}"
                ])
        } catch {
            fatalError("the embedded prompt set is invalid: \(error)")
        }
    }()
}
