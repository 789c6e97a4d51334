#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Pipeline

/// One row of a reference-format `baseline.jsonl` (a samples table): a question answered under
/// one role assignment.
public struct BaselineRow: Sendable {
    public var line: Int
    public var question: String
    /// The question's id, when the row has one (`id`, or HotpotQA's `_id`): rows are grouped
    /// into questions by it, so that two prompts with the same text stay two questions.
    public var id: String?
    public var action: Int
    public var answer: String?
    public var groundTruth: String?
    public var f1: Double
    public var recorded: JSONValue
}

/// Reads baseline rows, resolving each row's action; rows that cannot be used are counted by
/// reason (never silently dropped, never guessed).
public enum BaselineReader {
    public static func read(_ path: String, space: ActionSpace, names: CandidateNames?, skipped: inout [String: Int]) throws -> [BaselineRow] {
        try rows(from: JSONLines.read(path), file: path, space: space, names: names, skipped: &skipped)
    }

    public static func rows(from lines: [(line: Int, value: JSONValue)], file: String, space: ActionSpace, names: CandidateNames?,
                            skipped: inout [String: Int]) throws -> [BaselineRow] {
        var out: [BaselineRow] = []
        // Lines skipped per reason; the reason is reported with where its first few are.
        var skippedLines: [(reason: String, lines: [Int])] = []
        func skip(_ reason: String, _ line: Int) {
            if let i = skippedLines.firstIndex(where: { $0.reason == reason }) { skippedLines[i].lines.append(line) }
            else { skippedLines.append((reason, [line])) }
        }
        defer {
            for (reason, at) in skippedLines {
                let name = Path.lastComponent(file)  // a stage reads an unpacked copy: its own path says nothing
                let shown = at.prefix(3).map { "\(name):\($0)" }.joined(separator: ", ") + (at.count > 3 ? ", …" : "")
                skipped["\(reason) (\(shown))", default: 0] += at.count
            }
        }
        for (line, v) in lines {
            guard v.objectMembers != nil else { throw DataError(file: file, line: line, "expected a JSON object, found \(v.typeDescription)") }
            guard let question = v["question"]?.stringValue else {
                throw DataError(file: file, line: line, "missing or non-string 'question'")
            }
            let action: Int
            if let a = v["action_index"] {
                guard let i = a.intValue, space.indices.contains(i) else {
                    skip("unknown action_index (not in 0..<\(space.count))", line); continue
                }
                action = i
            } else {
                let ids = space.roles.map { (names ?? CandidateNames(ids: [:])).resolve(v[$0]) }
                guard ids.allSatisfy({ $0 != nil && $0! < space.candidates }) else {
                    skip("roles that do not resolve to a candidate id (pass --pair or --model-name-to-id-json)", line); continue
                }
                action = space.index(of: ids.map { $0! })
            }
            guard case .number(let f1)? = v["f1"], f1.isFinite else {
                skip("'f1' is not a number", line); continue
            }
            for metric in ScoreMatrix.boundedMetrics {
                if let x = v[metric]?.doubleValue, !(0...1).contains(x) {
                    throw DataError(file: file, line: line, "'\(metric)' is \(x), outside [0, 1] (F1, EM, precision and recall are bounded)")
                }
            }
            let id = (v["id"] ?? v["_id"]).flatMap { $0.stringValue ?? $0.intValue.map(String.init) }
            out.append(BaselineRow(line: line, question: question, id: id, action: action, answer: v["answer"]?.stringValue,
                                   groundTruth: v["ground_truth"]?.stringValue, f1: f1, recorded: v))
        }
        return out
    }
}
