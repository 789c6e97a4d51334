import Foundation
import XCTest
@testable import Pipeline
@testable import Stages
import TestSupport

/// The reply parser against python3's `re` running the reference's patterns, on thousands of
/// generated replies built from the fragments that matter (cases, word boundaries, Unicode
/// whitespace and case equivalences, brackets, key lines).
final class ReplyParserTests: XCTestCase {
    static let fragments = ["Thought:", "thought :", "THOUGHT:", "ThOuGhT:", "xThought:", "_Action:", "Action:", "action:",
                            "ACTıON:", "ACTİON:", "ſummary:", "Summary:", "SUMMARY :", "Summary", " ", "\n", "\n\n", "  ",
                            "\t", "\u{1C}", "\u{2003}", "foo", "Search[Paris]", "Finish[x] y]", "Key:", "Note :", "é", "_", "ı",
                            "]", "[", ":", "2:", "word", ".", "\r\n"]

    func generated(_ count: Int, seed: UInt64) -> [String] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in
            (0..<(1 + Int(rng.next() % 12))).map { _ in ReplyParserTests.fragments[Int(rng.next() % UInt64(ReplyParserTests.fragments.count))] }.joined()
        }
    }

    func pythonResults(_ replies: [String]) throws -> [JSONValue] {
        let script = """
            import json, re, sys
            T = re.compile(r'(?<!\\w)Thought:\\s*(.*?)(?:\\n\\s*Action:|$)', re.I | re.S)
            A = re.compile(r'(?<!\\w)Action:\\s*(.*)', re.I | re.S)
            S = re.compile(r'^\\s*Summary\\s*:\\s*(.*?)(?=^\\s*\\w+\\s*:|\\Z)', re.I | re.S | re.M)
            for reply in json.load(open(sys.argv[1])):
                s = reply.strip()
                t, a, m = T.search(s), A.search(s), S.search(s)
                ta = None
                if t and a:
                    thought, action = t.group(1).strip(), a.group(1).strip()
                    if ']' in action: action = action[:action.index(']') + 1]
                    ta = [thought, action]
                print(json.dumps([ta, m.group(1).strip() if m else None]))
            """
        let input = NSTemporaryDirectory() + "replies-\(UUID().uuidString).json"
        try JSONValue.array(replies.map(JSONValue.string)).canonical.write(toFile: input, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: input) }
        let text = try Python.output(script, arguments: [input])
        return try text.split(separator: "\n").map { try JSONParser.parse(String($0)) }
    }

    func testMatchesPythonReOnGeneratedReplies() throws {
        let replies = generated(4000, seed: 11) + [
            "Thought: I should search.\nAction: Search[Reggie Jackson]", "thought: a\n  ACTION: Finish[yes] trailing",
            "Summary:\nKey: x", "Intro\n  Summary : the gist\nmore\n\nNext: y", "xThought: no\nAction: Search[a]",
        ]
        let expected = try pythonResults(replies)
        XCTAssertEqual(expected.count, replies.count)
        var mismatches = 0
        for (reply, e) in zip(replies, expected) {
            let stripped = ReplyParser.strip(reply)
            let ta = ReplyParser.thoughtAndAction(stripped)
            let ours: JSONValue = [ta.map { [.string($0.thought), .string($0.action)] } ?? .null,
                                   ReplyParser.summary(stripped).map(JSONValue.string) ?? .null]
            if ours != e {
                mismatches += 1
                if mismatches <= 5 { XCTFail("\(reply.debugDescription): ours \(ours.canonical), python \(e.canonical)") }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testTheDocumentedExamples() {
        XCTAssertEqual(ReplyParser.summary("Summary:\nKey: x"), "")
        XCTAssertNil(ReplyParser.summary("The summary: x"))
        let ta = ReplyParser.thoughtAndAction("Thought: look it up\nAction: Search[Paris] and more]")
        XCTAssertEqual(ta?.thought, "look it up")
        XCTAssertEqual(ta?.action, "Search[Paris]")
    }
}
