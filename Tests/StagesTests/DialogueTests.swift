import Foundation
import XCTest
@testable import LLM
@testable import Pipeline
@testable import Stages

/// A model that answers from a script and records the prompts it saw.
final class ScriptedModel: ChatModel, @unchecked Sendable {
    let identity: String
    var replies: [String]
    var prompts: [String] = []
    var failAt: Int?
    init(_ name: String, _ replies: [String], failAt: Int? = nil) { identity = name; self.replies = replies; self.failAt = failAt }
    struct Down: Error, CustomStringConvertible { var description: String { "connection refused" } }
    func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        XCTAssertEqual(messages.count, 1)
        XCTAssertEqual(messages[0].role, "user")
        prompts.append(messages[0].content)
        if failAt == prompts.count { throw Down() }
        guard !replies.isEmpty else { XCTFail("\(identity): more calls than scripted"); return ChatReply(text: "") }
        return ChatReply(text: replies.removeFirst(), promptTokens: 10, completionTokens: 2)
    }
}

final class ScriptedRetriever: Retriever, @unchecked Sendable {
    let identity = "scripted"
    var entities: [String] = []
    var fail = false
    struct Boom: Error, CustomStringConvertible { var description: String { "retriever exploded" } }
    func retrieve(entity: String, paragraphs: [String]) throws -> String {
        entities.append(entity)
        if fail { throw Boom() }
        return "P(\(entity))"
    }
}

final class DialogueTests: XCTestCase {
    let prompts = try! PromptSet(
        studentThink: "ST|{context}|{question}|{observation}|{budget}", studentSummarize: "SS|{question}|{context}|{observation}|{thought}|{action}",
        teacherThink: "TT|{context}|{question}|{observation}", teacherSummarize: "TS|{question}|{context}|{observation}|{thought}|{action}",
        sentences: ["no_context": "NOCTX", "start_observation": "START", "must_finish": "MUST", "may_search": "MAY",
                    "invalid_thought": "BADTHOUGHT", "invalid_action": "BADACTION", "summary_failed": "FAILED:",
                    "cant_parse": "Can't parse action {action}", "student_observation": "Search Result: {student} Teacher's Advice: {teacher}",
                    "teacher_first_observation": "Student's Action: {student}", "teacher_observation": "Previous Advice: {teacher} Student's Action: {student}"])

    func testFinishAtOnceCostsOneCall() throws {
        let s = ScriptedModel("s", ["Thought: easy\nAction: Finish[Paris]"]), t = ScriptedModel("t", [])
        let r = try Dialogue(prompts: prompts, budget: 3).run(question: "Q?", paragraphs: ["p"], student: s, teacher: t, retriever: ScriptedRetriever())
        XCTAssertEqual(r.answer, "Paris")
        XCTAssertTrue(r.finished)
        XCTAssertEqual(s.prompts, ["ST|NOCTX|Q?|START|MAY"])
        XCTAssertEqual(r.turns.count, 1)
        XCTAssertEqual(r.promptTokens, 10)
    }

    func testSearchThenFinishFollowsTheTurnOrderAndObservations() throws {
        let s = ScriptedModel("s", ["Thought: look\nAction: Search[Reggie Jackson] extra]", "Summary: found Reggie",
                                    "  Thought: done\nAction: Finish[Reggie]  "])
        let t = ScriptedModel("t", ["Thought: good search\nAction: Continue[]", "Notes\nSummary: student found Reggie"])
        let retriever = ScriptedRetriever()
        let r = try Dialogue(prompts: prompts, budget: 3).run(question: "Q?", paragraphs: ["a", "b"], student: s, teacher: t, retriever: retriever)
        XCTAssertEqual(r.answer, "Reggie")
        XCTAssertEqual(retriever.entities, ["Reggie Jackson"], "Search[ ... ] sliced [7:-1] after cutting at the first ]")
        XCTAssertEqual(s.prompts, [
            "ST|NOCTX|Q?|START|MAY",
            "SS|Q?|NOCTX|START|look|Search[Reggie Jackson]",
            "ST|found Reggie|Q?|Search Result: Search[Reggie Jackson] P(Reggie Jackson) Teacher's Advice: Continue[] good search|MAY",
        ])
        XCTAssertEqual(t.prompts, [
            "TT|NOCTX|Q?|Student's Action: Search[Reggie Jackson] P(Reggie Jackson)",
            "TS|Q?|NOCTX|Student's Action: Search[Reggie Jackson] P(Reggie Jackson)|good search|Continue[]",
        ])
        XCTAssertEqual(r.turns.map { "\($0.step)\($0.role.rawValue.first!)\($0.call.rawValue.first!)" }, ["0st", "0ss", "0tt", "0ts", "1st"])
    }

    func testTheBudgetStopsTheDialogueWithAnEmptyAnswer() throws {
        // budget 2: student think ×3, summaries ×2, teacher think ×2, teacher summaries ×2.
        let search = "Thought: t\nAction: Search[x]"
        let s = ScriptedModel("s", [search, "Summary: a", search, "Summary: b", search])
        let t = ScriptedModel("t", ["Thought: go\nAction: ok", "Summary: c", "Thought: go on\nAction: ok2", "Summary: d"])
        let r = try Dialogue(prompts: prompts, budget: 2).run(question: "Q", paragraphs: [], student: s, teacher: t, retriever: ScriptedRetriever())
        XCTAssertEqual(r.answer, "")
        XCTAssertFalse(r.finished)
        XCTAssertEqual(r.turns.count, 9)
        XCTAssertEqual(s.prompts.last, "ST|b|Q|Search Result: Search[x] P(x) Teacher's Advice: ok2 go on|MUST")
        XCTAssertEqual(t.prompts[2], "TT|c|Q|Previous Advice: ok go Student's Action: Search[x] P(x)")
    }

    func testAFinishAtTheLastStepStillCounts() throws {
        let s = ScriptedModel("s", ["Thought: t\nAction: Finish[late]"])
        let r = try Dialogue(prompts: prompts, budget: 0).run(question: "Q", paragraphs: [], student: s, teacher: ScriptedModel("t", []), retriever: ScriptedRetriever())
        XCTAssertEqual(r.answer, "late")
        XCTAssertEqual(s.prompts, ["ST|NOCTX|Q|START|MUST"])
    }

    func testFallBacks() throws {
        // No Thought: → invalid sentences; unknown action → can't parse; summary missing → failure + previous;
        // Search[] → empty entity still asked; a failing retriever gives its error text.
        let s = ScriptedModel("s", ["I think it is Paris", "no summary here", "Thought: hmm\nAction: Lookup[x]", "Summary: ok",
                                    "Thought: a\nAction: Search[]", "Summary: s2", "Thought: z\nAction: Finsh[y]"])
        let t = ScriptedModel("t", ["Thought: fix it\nAction: Rethink[]", "Summary: t1", "garbage", "Summary: t2", "Thought: x\nAction: y", "Summary: t3"])
        let retriever = ScriptedRetriever()
        let r = try Dialogue(prompts: prompts, budget: 3).run(question: "Q", paragraphs: [], student: s, teacher: t, retriever: retriever)
        XCTAssertEqual(s.prompts[1], "SS|Q|NOCTX|START|BADTHOUGHT|BADACTION")
        XCTAssertEqual(s.prompts[2], "ST|FAILED:NOCTX|Q|Search Result: BADACTION Can't parse action BADACTION Teacher's Advice: Rethink[] fix it|MAY")
        XCTAssertEqual(t.prompts[2], "TT|t1|Q|Previous Advice: Rethink[] fix it Student's Action: Lookup[x] Can't parse action Lookup[x]")
        XCTAssertEqual(s.prompts[4], "ST|ok|Q|Search Result: Lookup[x] Can't parse action Lookup[x] Teacher's Advice: BADACTION BADTHOUGHT|MAY")
        XCTAssertEqual(retriever.entities, [""])
        XCTAssertEqual(r.answer, "", "Finsh[ is not Finish[ at the last step")
        XCTAssertEqual(s.prompts.last, "ST|s2|Q|Search Result: Search[] P() Teacher's Advice: y x|MUST")

        let failing = ScriptedRetriever(); failing.fail = true
        let s2 = ScriptedModel("s", ["Thought: a\nAction: Search[x]", "Summary: s", "Thought: b\nAction: Finish[y]"])
        let t2 = ScriptedModel("t", ["Thought: c\nAction: d", "Summary: e"])
        _ = try Dialogue(prompts: prompts, budget: 3).run(question: "Q", paragraphs: [], student: s2, teacher: t2, retriever: failing)
        XCTAssertEqual(t2.prompts[0], "TT|NOCTX|Q|Student's Action: Search[x] retriever exploded")
    }

    func testAFailingModelCallEndsTheQuestionWithItsTranscript() {
        let s = ScriptedModel("s", ["Thought: a\nAction: Search[x]", "Summary: s"])
        let t = ScriptedModel("t", [], failAt: 1)
        XCTAssertThrowsError(try Dialogue(prompts: prompts, budget: 3).run(question: "Q", paragraphs: [], student: s, teacher: t, retriever: ScriptedRetriever())) { e in
            let f = e as! Dialogue.ModelCallFailed
            XCTAssertEqual(f.role, .teacher)
            XCTAssertEqual(f.turns.count, 2)
            XCTAssertEqual("\(f)", "the teacher model failed at step 0: connection refused")
        }
    }

    func testSlicingIsPythons() {
        XCTAssertEqual(Dialogue.slice("Search[]"), "")
        XCTAssertEqual(Dialogue.slice("Finish[é]"), "é")
        XCTAssertEqual(Dialogue.slice("Finish"), "")
        XCTAssertEqual(Dialogue.slice(""), "")
    }

    func testPromptSetsAreValidatedAndTheShippedFilesAreTheStandardSet() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        XCTAssertEqual(try PromptSet.load(directory: root + "/prompts/standard"), PromptSet.standard)
        XCTAssertEqual(try PromptSet.load(directory: root + "/prompts/embedded"), PromptSet.embedded)
        XCTAssertThrowsError(try PromptSet(studentThink: "{question}", studentSummarize: "", teacherThink: "{budget}", teacherSummarize: "",
                                           sentences: PromptSet.standard.sentences)) { e in
            XCTAssertEqual("\(e)", "prompt set: teacher_think uses {budget}, which it is not given; it may use {context}, {observation}, {question}")
        }
        XCTAssertNotEqual(PromptSet.standard.digest, prompts.digest)
    }
}
