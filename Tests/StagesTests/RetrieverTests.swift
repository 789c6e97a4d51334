import Foundation
import XCTest
@testable import LLM
@testable import Stages

final class LexicalRetrieverTests: XCTestCase {
    func testPicksTheParagraphAboutTheEntityAndTheFirstOnTies() throws {
        let r = LexicalRetriever()
        let ps = ["Paris is the capital of France.", "Reggie Jackson played baseball for the Yankees.", "Jackson is a city in Mississippi."]
        XCTAssertEqual(try r.retrieve(entity: "Reggie Jackson", paragraphs: ps), ps[1])
        XCTAssertEqual(try r.retrieve(entity: "", paragraphs: ps), ps[0], "no score anywhere: the first paragraph")
        XCTAssertThrowsError(try r.retrieve(entity: "x", paragraphs: []))
    }

    /// On the 500 shared questions, searching each gold title: how often BM25 returns that paragraph.
    func testGoldParagraphHitRateOnTheSharedQuestions() throws {
        let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/hotpotqa").path
        let r = LexicalRetriever()
        var searches = 0, hits = 0
        for split in ["train", "valid", "test"] {
            for q in try HotpotQA.load("\(shared)/\(split).jsonl") {
                for title in q.goldTitles {
                    guard let gold = q.context.firstIndex(where: { $0.title == title }) else { continue }
                    searches += 1
                    if r.bestIndex(entity: title, paragraphs: q.paragraphs) == gold { hits += 1 }
                }
            }
        }
        print("lexical retriever: \(hits) of \(searches) gold-title searches return the gold paragraph (\(Double(hits) / Double(searches)))")
        XCTAssertEqual(searches, 1000)
        // 683 of 1000 when written (titles are not in the paragraph text); a random pick would get about 100.
        XCTAssertGreaterThan(Double(hits) / Double(searches), 0.6)
    }
}
