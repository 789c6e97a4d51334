import Foundation
import XCTest
@testable import LLM
@testable import Pipeline
@testable import Stages

/// A model that replies from a script and records the settings of every call.
final class SeedRecordingModel: ChatModel, @unchecked Sendable {
    let identity: String
    var replies: [String]
    var settings: [GenerationSettings] = []
    init(_ name: String, _ replies: [String]) { identity = name; self.replies = replies }
    func chat(_ messages: [ChatMessage], settings: GenerationSettings) throws -> ChatReply {
        self.settings.append(settings)
        guard !replies.isEmpty else { XCTFail("\(identity): more calls than scripted"); return ChatReply(text: "") }
        return ChatReply(text: replies.removeFirst())
    }
}

/// Sampled dialogues: each chosen candidate draws its own stream (from the dialogue's seed and
/// its index), both roles of one candidate share one counter, greedy calls are untouched.
final class SamplingStreamTests: XCTestCase {
    static let search = "Thought: look\nAction: Search[x]", finish = "Thought: done\nAction: Finish[y]"
    let question = HotpotQuestion(id: "q", question: "Q?", answer: "y", supportingFacts: [], context: [.init(title: "P", sentences: ["p"])])
    let sampled = GenerationSettings(temperature: 1, topP: 0.9, maxTokens: 8, seed: 43)

    func sampler(_ settings: GenerationSettings) -> DialogueSampler {
        DialogueSampler(dialogue: Dialogue(budget: 3, settings: settings), retriever: LexicalRetriever(), names: ["a", "b"])
    }

    /// Action 2 (teacher b, student a): the student's 3 calls and the teacher's 2.
    func twoCandidates(_ settings: GenerationSettings) throws -> (student: [GenerationSettings], teacher: [GenerationSettings]) {
        let a = SeedRecordingModel("a", [SamplingStreamTests.search, "Summary: s", SamplingStreamTests.finish])
        let b = SeedRecordingModel("b", ["Thought: fine\nAction: Continue[]", "Summary: t"])
        let s = try sampler(settings).run(question, qid: 0, action: 2, models: [a, b])
        XCTAssertEqual(s.result.answer, "y")
        return (a.settings, b.settings)
    }

    func testTwoCandidatesOfOneDialogueDrawDifferentStreams() throws {
        let (student, teacher) = try twoCandidates(sampled)
        let s = student.map { $0.seed! }, t = teacher.map { $0.seed! }
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(t.count, 2)
        XCTAssertNotEqual(s[0], t[0], "call 0 of each candidate: different seeds")
        XCTAssertTrue(Set(s).isDisjoint(with: t), "no seed shared between the candidates")
        XCTAssertEqual(Set(s + t).count, 5, "no two calls share a seed")
        XCTAssertEqual(s, (0..<3).map { CandidateStream.callSeed(43, candidate: 0, call: $0) })
        XCTAssertEqual(t, (0..<2).map { CandidateStream.callSeed(43, candidate: 1, call: $0) })
        // The uniforms the sampler draws from them differ too.
        var ra = SamplingRandom(seed: UInt64(s[0])), rb = SamplingRandom(seed: UInt64(t[0]))
        XCTAssertNotEqual((0..<8).map { _ in ra.unit() }, (0..<8).map { _ in rb.unit() })
        // Only the seed moves: every other setting reaches the model as the dialogue gave it.
        for x in student + teacher { XCTAssertEqual(x.temperature, 1); XCTAssertEqual(x.topP, 0.9); XCTAssertEqual(x.maxTokens, 8) }
    }

    func testOneCandidateInBothRolesKeepsOneCounter() throws {
        // Action 0: candidate a is teacher and student; its calls in dialogue order.
        let a = SeedRecordingModel("a", [SamplingStreamTests.search, "Summary: s", "Thought: fine\nAction: Continue[]", "Summary: t",
                                         SamplingStreamTests.finish])
        let b = SeedRecordingModel("b", [])
        _ = try sampler(sampled).run(question, qid: 0, action: 0, models: [a, b])
        XCTAssertEqual(a.settings.map { $0.seed! }, (0..<5).map { CandidateStream.callSeed(43, candidate: 0, call: $0) },
                       "student think, student summarize, teacher think, teacher summarize, student think: calls 0 to 4 of one stream")
        XCTAssertTrue(b.settings.isEmpty)
    }

    func testStreamsAreFixedByTheSeed() throws {
        let first = try twoCandidates(sampled), again = try twoCandidates(sampled)
        XCTAssertEqual(first.student, again.student)
        XCTAssertEqual(first.teacher, again.teacher)
        var other = sampled
        other.seed = 44
        let moved = try twoCandidates(other)
        XCTAssertTrue(Set(moved.student.map { $0.seed! } + moved.teacher.map { $0.seed! })
            .isDisjoint(with: first.student.map { $0.seed! } + first.teacher.map { $0.seed! }), "another dialogue seed, other streams")
        // The seeds stay below 2^53, so that a JSON request carries them exactly.
        let seeds = (0..<64).flatMap { d in (0..<3).flatMap { c in (0..<8).map { CandidateStream.callSeed(d, candidate: c, call: $0) } } }
        XCTAssertEqual(Set(seeds).count, seeds.count)
        XCTAssertTrue(seeds.allSatisfy { $0 >= 0 && $0 < 1 << 53 })
    }

    func testGreedyCallsAreUntouched() throws {
        let greedy = GenerationSettings(maxTokens: 8, seed: 43)
        let (student, teacher) = try twoCandidates(greedy)
        for x in student + teacher {
            var expected = greedy
            expected.priority = x.priority  // the dialogue's scheduling hint
            XCTAssertEqual(x, expected, "a greedy call reaches the model with the dialogue's settings")
        }
        var unseeded = sampled
        unseeded.seed = nil
        let (s, t) = try twoCandidates(unseeded)
        XCTAssertTrue((s + t).allSatisfy { $0.seed == nil }, "no seed: the backend's own choice, as before")
    }

    /// The `sample` stage's dialogue seeds: one per question from the stage's seed.
    func testEachQuestionOfTheSampleStageHasItsOwnSeed() {
        let seeds = (0..<1000).map { DialogueSampler.questionSeed(43, qid: $0) }
        XCTAssertEqual(Set(seeds).count, seeds.count)
        XCTAssertEqual(seeds, (0..<1000).map { DialogueSampler.questionSeed(43, qid: $0) })
        XCTAssertNotEqual(DialogueSampler.questionSeed(44, qid: 0), seeds[0])
    }
}
