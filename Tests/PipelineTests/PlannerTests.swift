import XCTest
@testable import Pipeline

/// The planner is a pure function: these tests give it lookups and no store.
final class PlannerTests: XCTestCase {
    func testPlanFromLookups() throws {
        let dir = try makeTempDir(self)
        try write("x", to: dir + "/in.txt")
        let spec = try load(#"{"name": "p", "stages": {"up": {"type": "upper", "inputs": {"text": "in.txt"}}, "wc": {"type": "word-count", "inputs": {"text": "up"}}, "src": {"type": "text-source", "params": {"text": "t"}}}}"#, dir: dir)
        let fileDigest = Digest.of(string: "file")
        let upKey = StageKey(stage: spec.stages["up"]!, inputs: ["text": fileDigest])
        let srcKey = StageKey(stage: spec.stages["src"]!, inputs: [:])
        let cachedEntry = ActionEntry(key: srcKey.digest, output: Digest.of(string: "out"), kind: "text", payload: srcKey.payload,
                                      createdAt: Date(), seconds: 0, objectStats: [:])
        var oldPayload = upKey.payload.setting(["params", "suffix"], to: "!")
        oldPayload = oldPayload.setting(["inputs", "text"], to: .string(Digest.of(string: "old").hex))
        let lookups = Planner.Lookups(
            inputDigest: { _, _ in fileDigest },
            action: { $0 == srcKey.digest ? cachedEntry : nil },
            previous: { $0 == "up" ? StageRef(key: Digest.of(string: "k"), output: Digest.of(string: "o"), kind: "text", payload: oldPayload,
                                               updatedAt: Date(), reason: [], ranAt: nil, seconds: 0) : nil })
        let plan = try Planner.plan(spec, selection: Set(spec.order), forced: [], lookups: lookups)
        XCTAssertEqual(plan.map(\.stage), ["up", "wc", "src"])
        XCTAssertEqual(plan.map(\.action), [.run, .dependsOnRun, .cached])
        XCTAssertEqual(plan[0].reasons, [
            "params.suffix removed (was \"!\")",
            "input 'text' changed (file \(dir)/in.txt): \(Digest.of(string: "old").short) → \(fileDigest.short)",
        ])
        XCTAssertEqual(plan[1].reasons, ["input from 'up', which will run"])

        let forced = try Planner.plan(spec, selection: Set(spec.order), forced: ["src"], lookups: lookups)
        XCTAssertEqual(forced[2].action, .run)
        let until = try Planner.plan(spec, selection: Planner.selection(spec, until: ["up"]), forced: [], lookups: lookups)
        XCTAssertEqual(until.map(\.action), [.run, .excluded, .excluded])
    }

    /// A file input that is not there yet (a model to fetch) makes its stage and those after it
    /// "cannot run", with the reason, instead of failing the whole plan.
    func testAMissingInputBlocksItsStageAndItsDependents() throws {
        let dir = try makeTempDir(self)
        let spec = try load(#"{"name": "p", "stages": {"up": {"type": "upper", "inputs": {"text": "models/absent.txt"}}, "wc": {"type": "word-count", "inputs": {"text": "up"}}, "src": {"type": "text-source", "params": {"text": "t"}}}}"#, dir: dir)
        struct Absent: Error, CustomStringConvertible { var description: String { "no such file" } }
        let lookups = Planner.Lookups(inputDigest: { _, _ in throw Absent() }, action: { _ in nil }, previous: { _ in nil })
        let plan = try Planner.plan(spec, selection: Set(spec.order), forced: [], lookups: lookups)
        XCTAssertEqual(plan.map(\.action), [.missingInput, .missingInput, .run])
        XCTAssertEqual(plan[0].reasons, ["input 'text': no such file"])
        XCTAssertEqual(plan[1].reasons, ["input from 'up', which cannot run yet"])
    }

    func testKeysIgnoreWhereAResourceIsServed() throws {
        XCTAssertEqual(StageKey.identity(ofResource: ["backend": "openai", "url": "http://a:1/v1", "model": "m"]),
                       StageKey.identity(ofResource: ["backend": "openai", "url": "http://b:2/v1", "model": "m"]))
        XCTAssertNotEqual(StageKey.identity(ofResource: ["backend": "openai", "model": "m1"]),
                          StageKey.identity(ofResource: ["backend": "openai", "model": "m2"]))
    }
}
