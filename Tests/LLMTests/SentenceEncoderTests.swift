import Foundation
import XCTest
@testable import LLM
import NN
import JSON

/// all-MiniLM-L6-v2 against sentence-transformers 6.2 (Tests/Fixtures/encoder/make_fixtures.py):
/// 227 sentences, long ones truncated at 256 tokens, Unicode of many scripts, control characters.
final class SentenceEncoderTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let model = root + "/models/all-MiniLM-L6-v2"
    static let fixtures = root + "/Tests/Fixtures/encoder"

    func cases() throws -> (sentences: [String], ids: [[Int]]) {
        let j = try JSONParser.parse(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: SentenceEncoderTests.fixtures + "/minilm-cases.json"))))
        return (j["sentences"]!.arrayValue!.map { $0.stringValue! }, j["ids"]!.arrayValue!.map { $0.arrayValue!.map { $0.intValue! } })
    }

    func encoder() throws -> SentenceEncoder {
        guard FileManager.default.fileExists(atPath: SentenceEncoderTests.model + "/model.safetensors") else {
            XCTFail("models/all-MiniLM-L6-v2 is missing: run scripts/fetch-models.sh")
            throw XCTSkip("no model")
        }
        return try SentenceEncoder(directory: SentenceEncoderTests.model)
    }

    func testWordPieceMatchesTheReferenceTokenizer() throws {
        let enc = try encoder()
        let (sentences, ids) = try cases()
        XCTAssertEqual(enc.maxLength, 256)
        var wrong = 0
        for (s, expected) in zip(sentences, ids) where enc.tokenizer.encode(s, maxLength: 256) != expected {
            wrong += 1
            if wrong <= 5 { XCTFail("\(s.debugDescription): \(enc.tokenizer.encode(s, maxLength: 256)) vs \(expected)") }
        }
        XCTAssertEqual(wrong, 0)
        XCTAssertTrue(ids.contains { $0.count == 256 }, "the fixture has truncated sentences")
    }

    func testEmbeddingsMatchSentenceTransformers() throws {
        let enc = try encoder()
        let (sentences, _) = try cases()
        let expected = try SafeTensorsFile(path: SentenceEncoderTests.fixtures + "/minilm-embeddings.safetensors").tensor("embeddings")
        XCTAssertEqual(expected.rows, sentences.count)
        XCTAssertGreaterThanOrEqual(sentences.count, 200)
        var worst: Float = 0
        for start in stride(from: 0, to: sentences.count, by: 32) {
            let batch = Array(sentences[start..<min(start + 32, sentences.count)])
            for (i, e) in try enc.embed(batch).enumerated() {
                let r = expected.rows((start + i)..<(start + i + 1)).data
                let dot = zip(e, r).reduce(0) { $0 + $1.0 * $1.1 }
                let norms = e.reduce(0) { $0 + $1 * $1 }.squareRoot() * r.reduce(0) { $0 + $1 * $1 }.squareRoot()
                worst = max(worst, 1 - dot / norms)
                XCTAssertEqual(e.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-4, "normalised")
            }
        }
        XCTAssertLessThan(worst, 1e-4, "largest cosine distance \(worst)")
        print("largest cosine distance to sentence-transformers over \(sentences.count) sentences: \(worst)")
    }
}

extension SentenceEncoderTests {
    /// A directory with only vocab.txt (and tokenizer_config.json) tokenizes the same.
    /// The embed stage's embeddings hold the same bits on any number of threads (its key and
    /// its journal know nothing of the machine's cores), and match `embed`'s to rounding.
    func testEmbeddingInGroupsGivesTheSameBitsOnAnyThreads() throws {
        let enc = try encoder()
        let sentences = Array(try cases().sentences.prefix(40))
        enc.threads = 1
        let one = try enc.embedInGroups(sentences, group: 6)
        for threads in [2, 3, 4] {
            enc.threads = threads
            XCTAssertEqual(try enc.embedInGroups(sentences, group: 6), one, "\(threads) threads")
        }
        let plain = try enc.embed(sentences)
        for (a, b) in zip(one, plain) { for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5) } }
        XCTAssertEqual(one.count, sentences.count)
    }

    func testVocabTxtGivesTheSameIDsAsTokenizerJSON() throws {
        _ = try encoder()
        let dir = NSTemporaryDirectory() + "vocab-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["vocab.txt", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: SentenceEncoderTests.model + "/" + f, toPath: dir + "/" + f)
        }
        let fromVocab = try WordPieceTokenizer(directory: dir)
        let (sentences, ids) = try cases()
        for (s, expected) in zip(sentences, ids) { XCTAssertEqual(fromVocab.encode(s, maxLength: 256), expected, s) }
    }
}
