import Foundation
import XCTest
@testable import LLM
@testable import Pipeline
@testable import Stages

final class SynthDataTests: XCTestCase {
    func params(_ extra: String = "") throws -> SynthDataStage.Params {
        try SynthDataStage.Params.from(JSONParser.parse("{\"split\": \"train\"\(extra)}"))
    }

    func testSplitsAreDisjointSlicesOfOneWorldInHotpotQAFormat() throws {
        let dir = NSTemporaryDirectory() + "synth-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let spec = try PipelineSpec.parse(text: """
            {"name": "w", "stages": {
              "train": {"type": "synth-data", "params": {"split": "train", "sizes": {"train": 120, "valid": 40, "test": 40}}},
              "valid": {"type": "synth-data", "params": {"split": "valid", "sizes": {"train": 120, "valid": 40, "test": 40}}},
              "test": {"type": "synth-data", "params": {"split": "test", "sizes": {"train": 120, "valid": 40, "test": 40}}}}}
            """, file: "w.json", registry: HAPSStages.registry, baseDirectory: dir)
        let store = try Store(root: dir + "/store")
        let run = try Executor(spec: spec, store: store, options: RunOptions()).run()
        XCTAssertTrue(run.succeeded, "\(run.results)")
        var splits: [String: [HotpotQuestion]] = [:]
        for s in ["train", "valid", "test"] {
            splits[s] = try HotpotQA.load(try store.materialize(run.result(s)!.output!) + "/questions.jsonl")  // the loader validates the format
        }
        XCTAssertEqual(splits.mapValues(\.count), ["train": 120, "valid": 40, "test": 40])
        let texts = splits.values.flatMap { $0.map(\.question) }
        XCTAssertEqual(Set(texts).count, 200, "no question in two splits")
        let titles = splits.mapValues { Set($0.flatMap { $0.context.map(\.title) }) }
        XCTAssertFalse(titles["train"]!.isDisjoint(with: titles["test"]!), "one world: the splits share entities")
        let again = try Executor(spec: spec, store: try Store(root: dir + "/store2"), options: RunOptions()).run()
        XCTAssertEqual(again.result("valid")!.output, run.result("valid")!.output, "deterministic")
    }

    /// The `rl` split: drawn after the three, disjoint from them, and leaving them as they are.
    func testTheRLSplitIsFreshAndLeavesTheOthersAlone() throws {
        let before = try SynthDataStage.generate(try params(#", "sizes": {"train": 120, "valid": 40, "test": 40}, "bridge_fraction": 0.5"#))
        let after = try SynthDataStage.generate(try params(#", "sizes": {"train": 120, "valid": 40, "test": 40, "rl": 60}, "bridge_fraction": 0.5"#))
        for s in ["train", "valid", "test"] { XCTAssertEqual(after[s]!.map(\.id), before[s]!.map(\.id), s) }
        let rl = try XCTUnwrap(after["rl"])
        XCTAssertEqual(rl.count, 60)
        XCTAssertEqual(rl.filter { $0.type == "bridge" }.count, 30, "the bridge share kept")
        let others = Set(["train", "valid", "test"].flatMap { after[$0]!.map(\.question) })
        XCTAssertTrue(others.isDisjoint(with: rl.map(\.question)), "no rl question in another split")
        XCTAssertNil(before["rl"], "none unless asked")
    }

    /// The `rl_valid` split (joint RL's selection split): drawn after `rl`, disjoint from all
    /// four, and leaving every one of them as it is.
    func testTheRLValidSplitIsFreshAndLeavesTheOthersAlone() throws {
        let sizes = #""train": 120, "valid": 40, "test": 40, "rl": 60"#
        let before = try SynthDataStage.generate(try params(", \"sizes\": {\(sizes)}, \"bridge_fraction\": 0.5"))
        let after = try SynthDataStage.generate(try params(", \"sizes\": {\(sizes), \"rl_valid\": 30}, \"bridge_fraction\": 0.5"))
        for s in ["train", "valid", "test", "rl"] { XCTAssertEqual(after[s]!.map(\.id), before[s]!.map(\.id), s) }
        let selection = try XCTUnwrap(after["rl_valid"])
        XCTAssertEqual(selection.count, 30)
        XCTAssertEqual(selection.filter { $0.type == "bridge" }.count, 15, "the bridge share kept")
        let others = Set(["train", "valid", "test", "rl"].flatMap { after[$0]!.map(\.question) })
        XCTAssertTrue(others.isDisjoint(with: selection.map(\.question)), "no rl_valid question in another split")
        XCTAssertEqual(Set(selection.map(\.question)).count, 30)
        XCTAssertNil(before["rl_valid"], "none unless asked")
    }

    func testQuestionsAreMultiHopWithTheirEvidence() throws {
        let qs = try SynthDataStage.generate(try params())["train"]!
        XCTAssertEqual(qs.count, 300)
        var yesNo = 0
        for q in qs {
            XCTAssertEqual(q.context.count, 10)
            XCTAssertEqual(Set(q.context.map(\.title)).count, 10, "distinct paragraphs")
            let gold = q.goldTitles
            XCTAssertEqual(gold.count, 2, q.question)
            for f in q.supportingFacts {
                let p = try XCTUnwrap(q.context.first { $0.title == f.title }, "\(f.title) is in the context")
                XCTAssertLessThan(f.sentence, p.sentences.count)
            }
            let answer = try XCTUnwrap(q.answer)
            if answer == "yes" || answer == "no" { yesNo += 1; continue }
            let evidence = q.supportingFacts.map { f in q.context.first { $0.title == f.title }!.sentences[f.sentence] }.joined()
            XCTAssertTrue(evidence.contains(answer) || q.question.contains(answer), "\(q.question) → \(answer) is in its evidence")
            if q.type == "bridge" {
                // The first hop's sentence names the second gold entity.
                let first = q.supportingFacts[0]
                let sentence = q.context.first { $0.title == first.title }!.sentences[first.sentence]
                XCTAssertTrue(sentence.contains(gold[1]), "\(q.question): '\(sentence)' leads to \(gold[1])")
                XCTAssertFalse(q.question.contains(gold[1]), "a bridge question does not name its bridge entity")
            }
        }
        let bridges = qs.filter { $0.type == "bridge" }.count
        XCTAssertEqual(Double(bridges) / 300, 0.8, accuracy: 0.08)
        XCTAssertGreaterThan(yesNo, 10, "comparison questions include yes/no ones")
        XCTAssertTrue(qs.allSatisfy { $0.level == "hard" })
    }

    /// Hard distractors share a name with a gold entity far more often than easy ones, and
    /// plain BM25 (without the subject rule) finds the gold paragraph less often among them.
    func testDifficultyMakesDistractorsConfusable() throws {
        func stats(_ difficulty: String) throws -> (shared: Double, lexical: Double) {
            let qs = try SynthDataStage.generate(try params(", \"difficulty\": \"\(difficulty)\", \"sizes\": {\"train\": 150, \"valid\": 0, \"test\": 0}"))["train"]!
            var shared = 0, searches = 0, hits = 0
            for q in qs {
                let goldWords = Set(q.goldTitles.flatMap { $0.split(separator: " ").map(String.init) })
                for p in q.context where !q.goldTitles.contains(p.title) {
                    if !goldWords.isDisjoint(with: p.title.split(separator: " ").map(String.init)) || goldWords.contains(where: { p.title.hasPrefix(String($0.prefix(4))) }) { shared += 1 }
                }
                for t in q.goldTitles {
                    searches += 1
                    if LexicalRetriever(subjectBoost: 0).bestIndex(entity: t, paragraphs: q.paragraphs) == q.context.firstIndex(where: { $0.title == t }) { hits += 1 }
                }
            }
            return (Double(shared) / Double(qs.count), Double(hits) / Double(searches))
        }
        let easy = try stats("easy"), hard = try stats("hard")
        print("synth-data: confusable distractors per question easy \(easy.shared), hard \(hard.shared); BM25 gold hit rate easy \(easy.lexical), hard \(hard.lexical)")
        XCTAssertGreaterThan(hard.shared, easy.shared * 2, "confusable distractors per question: easy \(easy.shared), hard \(hard.shared)")
        XCTAssertLessThan(hard.lexical, easy.lexical, "BM25 gold hit rate: easy \(easy.lexical), hard \(hard.lexical)")
    }

    func testParametersAreValidated() {
        XCTAssertThrowsError(try PipelineSpec.parse(text: """
            {"name": "w", "stages": {"s": {"type": "synth-data", "params": {"split": "vaild", "difficulty": "brutal", "sizes": {"dev": 3}}}}}
            """, file: "w.json", registry: HAPSStages.registry, baseDirectory: "/tmp")) { e in
            let t = "\(e)"
            XCTAssertTrue(t.contains("$.stages.s.params.split: unknown split 'vaild'; did you mean 'valid'?"), t)
            XCTAssertTrue(t.contains("$.stages.s.params.difficulty: unknown difficulty 'brutal'; one of: easy, medium, hard"), t)
            XCTAssertTrue(t.contains("$.stages.s.params.sizes.dev: unknown split"), t)
        }
    }
}
