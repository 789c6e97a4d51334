import Foundation
import XCTest
import JSON
@testable import NN

/// Byte-level BPE against `tokenizers` 0.23: two tokenizers trained by
/// Tests/Fixtures/engine/make_fixtures.py (GPT-2's split, Llama 3's) and their encodings of
/// over three thousand strings: slices of text and random mixtures of scripts, digits, emoji,
/// combining marks, contractions and whitespace runs.
final class TokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/engine").path

    func cases() throws -> JSONValue {
        try JSONParser.parse(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: TokenizerTests.fixtures + "/tokenizer-cases.json"))))
    }

    func check(_ kind: String) throws {
        let tok = try BPETokenizer(path: TokenizerTests.fixtures + "/tokenizer-\(kind).json")
        let c = try cases()
        let strings = c["strings"]!.arrayValue!.map { $0.stringValue! }
        let expected = c[kind]!.arrayValue!.map { $0.arrayValue!.map { $0.intValue! } }
        XCTAssertGreaterThan(strings.count, 3300)
        var wrong = 0
        for (s, ids) in zip(strings, expected) {
            let got = tok.encode(s)
            if got != ids {
                wrong += 1
                if wrong <= 5 { XCTFail("\(kind): \(s.debugDescription) → \(got), tokenizers gives \(ids)") }
            }
            XCTAssertEqual(tok.decode(got), s, "round trip")
        }
        XCTAssertEqual(wrong, 0, "\(kind): \(wrong) of \(strings.count) strings differ")
    }

    func testGPT2SplitMatchesTokenizers() throws { try check("gpt2") }
    func testLlama3SplitMatchesTokenizers() throws { try check("llama3") }

    func testSpecialTokensInTextBecomeTheirIDs() throws {
        let tok = try BPETokenizer(path: TokenizerTests.fixtures + "/tokenizer-llama3.json")
        let ids = tok.encode("<|begin_of_text|>Hi<|end_of_text|>")
        XCTAssertEqual(ids.first, 0); XCTAssertEqual(ids.last, 1)
        XCTAssertEqual(Array(ids.dropFirst().dropLast()), tok.encode("Hi"))
        XCTAssertEqual(tok.decode(ids, skipSpecial: true), "Hi")
        XCTAssertEqual(tok.decode(ids), "<|begin_of_text|>Hi<|end_of_text|>")
    }

    func testPreTokenizerSplitsLikeTheRegexes() {
        XCTAssertEqual(PreTokenizer.gpt2.split("I'm  here\n 12ab!!"), ["I", "'m", " ", " here", "\n", " 12", "ab", "!!"])
        XCTAssertEqual(PreTokenizer.llama3(maxDigits: 3).split("I'M 12345 x\n\n y"), ["I", "'M", " ", "123", "45", " x", "\n\n", " y"])
        XCTAssertEqual(PreTokenizer.llama3(maxDigits: 1).split("2024"), ["2", "0", "2", "4"])
    }

    func testUnsupportedTokenizersAreRefusedByName() {
        XCTAssertThrowsError(try BPETokenizer(json: ["model": ["type": "WordPiece"]], path: "t.json")) {
            XCTAssertEqual("\($0)", "t.json: model.type is WordPiece; only BPE (byte-level) is supported")
        }
    }
}
