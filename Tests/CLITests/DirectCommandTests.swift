import Foundation
import XCTest

/// The direct commands that mirror a stage (`sample`, `score`, `build-sft`, `sft-train`, `rl-train`)
/// take that stage's parameters as flags from its own declarations: `--help` lists the same
/// parameters with the same defaults as `haps-pipe types`, and the reference scripts'
/// spellings name the same parameters.
final class DirectCommandTests: XCTestCase {
    static let commands = ["sample", "score", "build-sft", "sft-train", "rl-train"]

    /// `types TYPE`: parameter → "default X" | "required" | "optional".
    static func declared(_ types: String) -> [String: String] {
        let text = types.components(separatedBy: "\nparameters:\n").last ?? ""
        let re = try! NSRegularExpression(pattern: #"(?m)^  (\w+) \(.*?, (required|optional|default .*?)\)(?::|$)"#)
        var out: [String: String] = [:]
        for m in re.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            out[String(text[Range(m.range(at: 1), in: text)!])] = String(text[Range(m.range(at: 2), in: text)!])
        }
        return out
    }

    /// `COMMAND --help`: the stage-parameter section's flags (kebab case → snake case) with
    /// their defaults, and the parameters the command sets from its own options.
    static func helpParameters(_ text: String) -> (flags: [String: String], setByCommand: Set<String>) {
        guard let start = text.range(of: "Stage parameters (") else { return ([:], []) }
        let section = text[start.upperBound...].prefix { _ in true }.components(separatedBy: "USAGE:")[0]
        let joined = section.split(separator: "\n").joined(separator: " ")
        let re = try! NSRegularExpression(pattern: #"  --([a-z0-9-]+) \((required|optional|default .*?); "#)
        var flags: [String: String] = [:]
        for m in re.matches(in: section, range: NSRange(section.startIndex..., in: section)) {
            flags[section[Range(m.range(at: 1), in: section)!].replacingOccurrences(of: "-", with: "_")] = String(section[Range(m.range(at: 2), in: section)!])
        }
        var own: Set<String> = []
        if let r = joined.range(of: "set by this command's own options: ") {
            let names = try! NSRegularExpression(pattern: #"(\w+) \(--"#)
            let rest = String(joined[r.upperBound...])
            for m in names.matches(in: rest, range: NSRange(rest.startIndex..., in: rest)) { own.insert(String(rest[Range(m.range(at: 1), in: rest)!])) }
        }
        return (flags, own)
    }

    func testHelpAndTypesListTheSameParametersWithTheSameDefaults() throws {
        let dir = try makeTempDirectory(self)
        for command in Self.commands {
            let help = try CLI.run([command, "--help"], in: dir), types = try CLI.run(["types", command], in: dir)
            XCTAssertEqual(help.status, 0, help.stderr)
            XCTAssertEqual(types.status, 0, types.stderr)
            let declared = Self.declared(types.stdout), (flags, own) = Self.helpParameters(help.stdout)
            XCTAssertGreaterThan(declared.count, 2, "\(command): types printed no parameters:\n\(types.stdout)")
            XCTAssertFalse(flags.isEmpty, "\(command) --help lists no stage parameters:\n\(help.stdout)")
            XCTAssertEqual(Set(flags.keys).union(own), Set(declared.keys), "\(command): every parameter is a flag or set by the command")
            XCTAssertTrue(Set(flags.keys).isDisjoint(with: own), command)
            for (name, value) in flags { XCTAssertEqual(value, declared[name], "\(command) --\(name)") }
        }
    }

    /// A flag the stage does not declare is refused with the nearest one; a bad enum value
    /// names the flag as typed; a reference flag with no meaning here is accepted with a note.
    func testUnknownFlagsAndValuesAreNamed() throws {
        let dir = try makeTempDirectory(self)
        let typo = try CLI.run(["rl-train", "--router-path", "r", "--train-data", "t", "--valid-data", "v", "--output-dir", "o",
                                "--model", "a=.", "--lora-rank", "4"], in: dir)
        XCTAssertEqual(typo.status, 2, typo.stderr)
        XCTAssertTrue(typo.stderr.contains("unknown option '--lora-rank' for rl-train; did you mean"), typo.stderr)
        // rl_batch.py's batch sizes and devices mean nothing to the CPU engine: accepted, with a note.
        let reference = try CLI.run(["rl-train", "--base-router-path", "r", "--train-jsonl", "t", "--valid-jsonl", "v", "--output-dir", "o",
                                     "--model", "a=.", "--dialogue-bs", "8", "--mlp-num-layer", "3", "--s-device", "cuda:0"], in: dir)
        XCTAssertTrue(reference.stderr.contains("note: --dialogue-bs has no effect"), reference.stderr)
        XCTAssertTrue(reference.stderr.contains("note: --s-device has no effect"), reference.stderr)
        XCTAssertTrue(reference.stderr.contains("-router-path r: no such file or directory"), "the reference's names are the inputs': \(reference.stderr)")
        let number = try CLI.run(["build-sft", "--baseline", "b", "--output", "o", "--min-max-score", "lots"], in: dir)
        XCTAssertTrue(number.stderr.contains("--min-max-score: expected a number, found 'lots'"), number.stderr)
        let choice = try CLI.run(["build-sft", "--baseline", "b", "--output", "o", "--tie-policy", "al"], in: dir)
        XCTAssertTrue(choice.stderr.contains("unknown --tie-policy 'al'; did you mean 'all'?"), choice.stderr)
    }
}
