public import LLM
public import Pipeline

/// A scripted expert that plays either role of the dialogue on generated questions, in the
/// embedded prompt set: the student searches the gold entities in order (copying the bridge
/// entity from what it found), keeps the supporting sentences as notes, and finishes with the
/// answer; the teacher approves a right search and, after a wrong one, says which entity to
/// search instead. With probability `noise` the student searches a confusable distractor first,
/// so the transcripts hold mistakes and recoveries. Entities and answers are written after a
/// space (`Search[ Name]`, `Finish[ 1923]`): byte-level BPE attaches a space to the word that
/// follows it, so this gives the name the same tokens as in the question and the paragraphs,
/// and copying it is a plain induction (the protocol slices the entity as is; retrieval and
/// the F1 normalisation ignore the space). Its transcripts are the training data of the
/// small candidates (`train-agent`). With a planted `defect` (the planted world of issue 28),
/// it ends a bridge answer with the defect's phrase on a share `rate` of the questions (a
/// coin per question), as a candidate with a habit no prompt can fix.
public struct ExpertAgent: ChatModel {
    struct Plan: Sendable {
        var hops: [String]            // gold titles, in the order to search them
        var facts: [String: String]   // title → the supporting sentence(s) of that paragraph
        var answer: String
        var decoys: [String]          // confusable distractor titles
        var comparison: Bool
    }
    let plans: [String: Plan]
    public let noise: Double
    public let seed: UInt64
    /// A phrase wrongly appended to a share `rate` of the bridge answers (nil: none).
    public let defect: (phrase: String, rate: Double)?
    public var identity: String {
        "expert(noise=\(noise),seed=\(seed)" + (defect.map { ",defect=\($0.phrase)@\($0.rate)" } ?? "") + ")"
    }

    public init(questions: [HotpotQuestion], noise: Double, seed: UInt64, defect: (phrase: String, rate: Double)? = nil) {
        var plans: [String: Plan] = [:]
        for q in questions {
            let gold = q.goldTitles
            var facts: [String: String] = [:]
            for f in q.supportingFacts {
                let s = q.context.first { $0.title == f.title }!.sentences[f.sentence].trimmingSpaces
                facts[f.title] = facts[f.title].map { $0 + " " + s } ?? s
            }
            let goldWords = Set(gold.flatMap { $0.split(separator: " ") })
            let decoys = q.context.map(\.title).filter { t in !gold.contains(t) && !goldWords.isDisjoint(with: t.split(separator: " ")) }
            plans[q.question.trimmingSpaces] = Plan(hops: gold, facts: facts, answer: q.answer ?? "", decoys: decoys.isEmpty ? q.context.map(\.title).filter { !gold.contains($0) } : decoys,
                                                    comparison: q.type == "comparison")
        }
        self.plans = plans; self.noise = noise; self.seed = seed; self.defect = defect
    }

    /// The value of a `Name: value` line of the prompt.
    static func field(_ name: String, _ prompt: String) -> String {
        for line in prompt.split(separator: "\n", omittingEmptySubsequences: false) where line.hasPrefix(name + ": ") {
            return String(line.dropFirst(name.count + 2))
        }
        return ""
    }

    /// The entity of the last `Search[...]` in `text`.
    static func lastSearch(_ text: String) -> String {
        guard let marker = text.ranges(of: "Search[").last else { return "" }
        return String(text[marker.upperBound...].prefix { $0 != "]" })
    }

    /// A deterministic coin for (question, step).
    func coin(_ question: String, _ salt: String) -> Double {
        let d = Digest.of(string: "\(seed)|\(question)|\(salt)").hex.prefix(12)
        return Double(UInt64(d, radix: 16)!) / Double(1 << 48)
    }

    public func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        let prompt = messages.last?.content ?? ""
        let teacher = prompt.hasPrefix("Teach. ")
        let question = ExpertAgent.field(teacher ? "Teach. Q" : "Q", prompt).trimmingSpaces
        guard let plan = plans[question] else { return ChatReply(text: "Thought: unknown question\nAction: Finish[unknown]") }
        let notes = ExpertAgent.field("Notes", prompt), seen = ExpertAgent.field("Seen", prompt)
        let text: String
        if prompt.contains("\nSummary: <notes>") {
            // Notes: the supporting sentences of every gold paragraph found so far.
            let found = plan.hops.filter { seen.contains(plan.facts[$0] ?? "\u{0}") || notes.contains(plan.facts[$0] ?? "\u{0}") }
            text = "Summary: " + (found.isEmpty ? "nothing found" : found.map { plan.facts[$0]! }.joined(separator: " "))
        } else if teacher {
            // The student's latest search: the last "Search[...]" in what the teacher sees.
            let searched = ExpertAgent.lastSearch(seen).trimmingSpaces
            let foundBefore = plan.hops.filter { notes.contains(plan.facts[$0] ?? "\u{0}") }
            let next = plan.hops.first { !foundBefore.contains($0) && $0 != searched }
            if plan.hops.contains(searched) {
                text = "Thought: Good. " + (next.map { "Next find \($0)." } ?? "Now answer.") + "\nAction: Continue[]"
            } else {
                let want = plan.hops.first { !foundBefore.contains($0) } ?? plan.hops[0]
                text = "Thought: Wrong one. Search[ \(want)] instead.\nAction: Rethink[]"
            }
        } else {
            let found = plan.hops.filter { seen.contains(plan.facts[$0] ?? "\u{0}") || notes.contains(plan.facts[$0] ?? "\u{0}") }
            let step = found.count + (seen.contains("Wrong one") ? 1 : 0)
            if found.count == plan.hops.count || prompt.contains("\nFinish now.\n") {
                // A comparison needs both facts; a bridge's answer is in the last hop's fact, and
                // saying only that keeps the answer close to where it is copied from.
                let said = plan.comparison ? found : found.filter { $0 == plan.hops.last }
                var answer = plan.answer
                if let defect, !plan.comparison, coin(question, "defect") < defect.rate { answer += " " + defect.phrase }
                text = "Thought: \(said.map { plan.facts[$0]! }.joined(separator: " "))\nAction: Finish[ \(answer)]"
            } else {
                let next = plan.hops.first { !found.contains($0) }!
                if !seen.contains("Wrong one") && coin(question, "mistake\(step)") < noise, let decoy = plan.decoys.first {
                    text = "Thought: I need \(next).\nAction: Search[ \(decoy)]"
                } else {
                    text = "Thought: I need \(next).\nAction: Search[ \(next)]"
                }
            }
        }
        return ChatReply(text: text, promptTokens: prompt.count / 4, completionTokens: text.count / 4, finishReason: "stop")
    }
}
