import Foundation
import XCTest
@testable import Pipeline
@testable import Stages
import TestSupport

/// Paths of the data the repository carries for its tests.
enum Fixtures {
    /// The repository's root.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    /// The reference's recorded outputs (Tests/Fixtures/reference, see its README).
    static let root = repository + "/Tests/Fixtures/reference"
    /// The 500 HotpotQA questions (dataset/{train,valid,test}.jsonl).
    static let hotpotQA = repository + "/dataset"
}

/// The reference's recorded outputs reproduced exactly.

final class MetricsFixtureTests: XCTestCase {
    func testEveryRecordedCaseAgrees() throws {
        let lines = try JSONLines.read(Fixtures.root + "/metrics.jsonl")
        XCTAssertGreaterThan(lines.count, 300)
        for (line, v) in lines {
            let m = AnswerMetrics(prediction: v["prediction"]!.stringValue!, groundTruth: v["ground_truth"]!.stringValue!)
            let expected = AnswerMetrics(f1: v["f1"]!.doubleValue!, precision: v["precision"]!.doubleValue!,
                                         recall: v["recall"]!.doubleValue!, em: v["em"]!.intValue!)
            XCTAssertEqual(m, expected, "metrics.jsonl:\(line): \(v.canonical)")
        }
    }

    func testRewardAndQuirks() {
        XCTAssertEqual(AnswerMetrics(prediction: "Paris", groundTruth: "London").reward, -1)
        XCTAssertEqual(AnswerMetrics(prediction: "not sure", groundTruth: "no").em, 1, "the reference's EM quirk")
        XCTAssertEqual(AnswerMetrics(prediction: "no", groundTruth: "yes").f1, 0)
    }

    /// Python is the oracle for the text rules on strings the fixture may not cover.
    func testNormalisationMatchesPythonOnTrickyText() throws {
        let cases = ["ΟΔΥΣΣΕΥΣ", "Σ", "AΣ B", "İstanbul", "The\u{1C}Cat", "a\u{00A0}an\u{2003}the", "e\u{301}cole",
                     "Straße", "ǅ", "the_the an1 Ⅻ a²", "A cat's (the) \"thing\"", "x\u{180E}y", "ﬁne"]
        let script = """
            import json, re, string, sys
            def normalize_answer(s):
                def remove_articles(text): return re.sub(r'\\b(a|an|the)\\b', ' ', text)
                def white_space_fix(text): return ' '.join(text.split())
                def remove_punc(text):
                    exclude = set(string.punctuation)
                    return ''.join(ch for ch in text if ch not in exclude)
                return white_space_fix(remove_articles(remove_punc(s.lower())))
            for c in json.loads(sys.argv[1]): print(json.dumps(normalize_answer(c)))
            """
        let lines = try Python.output(script, arguments: [String(decoding: try JSONSerialization.data(withJSONObject: cases), as: UTF8.self)])
            .split(separator: "\n")
        for (c, line) in zip(cases, lines) {
            let expected = try JSONParser.parse(String(line)).stringValue!
            XCTAssertTrue(AnswerMetrics.normalize(c).unicodeScalars.elementsEqual(expected.unicodeScalars),
                          "\(c.debugDescription): \(AnswerMetrics.normalize(c).debugDescription) vs \(expected.debugDescription)")
        }
    }
}

final class BuildSFTFixtureTests: XCTestCase {
    /// Turns the reference's underscore flags into options.
    func options(_ args: [String]) throws -> BuildSFTOptions {
        var o = BuildSFTOptions()
        var i = 0
        while i < args.count {
            let flag = args[i], value = args[i + 1]
            switch flag {
            case "--tie_policy": o.tiePolicy = try XCTUnwrap(.init(rawValue: value))
            case "--balance": o.balance = try XCTUnwrap(.init(rawValue: value))
            case "--seed": o.seed = Int(value)!
            case "--min_max_score": o.minMaxScore = Double(value)!
            case "--target_per_class": o.targetPerClass = Int(value)!
            case "--smart_target": o.smartTarget = Int(value)!
            case "--smart_frac_of_max": o.smartFracOfMax = Double(value)!
            case "--smart_minority_dup_factor": o.smartMinorityDupFactor = Double(value)!
            case "--auto_skip_if_balanced_ratio": o.autoSkipIfBalancedRatio = Double(value)!
            default: XCTFail("flag \(flag) not handled by the test")
            }
            i += 2
        }
        return o
    }

    func testEveryRecordedCaseIsReproducedRowForRowAndByteForByte() throws {
        let dir = Fixtures.root + "/build-sft"
        let cases = try XCTUnwrap(try JSONParser.parse(FileIO.readString(dir + "/cases.json")).arrayValue)
        XCTAssertEqual(cases.count, 8)
        for c in cases {
            let args = c["args"]!.arrayValue!.map { $0.stringValue! }
            let (rows, report) = try BuildSFT.build(baseline: dir + "/baseline.jsonl", space: ActionSpace(), names: nil, options: try options(args))
            let expectedText = try FileIO.readString(dir + "/" + c["expected"]!.stringValue!)
            let expected = try XCTUnwrap(try JSONParser.parse(expectedText).arrayValue)
            XCTAssertEqual(rows.count, c["rows"]!.intValue!, "\(args)")
            XCTAssertEqual(report.countsAfterBalance.reduce(0, +), rows.count)
            for (i, (row, e)) in zip(rows, expected).enumerated() {
                XCTAssertEqual(row.question, e["question"]!.stringValue!, "\(args) row \(i)")
                XCTAssertEqual(row.reward, e["reward"]!.doubleValue!, "\(args) row \(i)")
                XCTAssertEqual(row.output, e["output"]!.stringValue!, "\(args) row \(i)")
            }
            XCTAssertEqual(BuildSFT.json(rows), expectedText, "\(args): the file is byte-identical")
        }
    }
}
