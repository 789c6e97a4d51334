import XCTest
@testable import Pipeline

final class JournalTests: XCTestCase {
    func testEntriesSurviveReopen() throws {
        let dir = try makeTempDir(self)
        let j = try Journal(path: dir + "/j.log")
        try j.append(key: "a", json: 1)
        try j.append(key: "b", json: ["x": "y"])
        try j.append(key: "a", json: 2)
        let k = try Journal(path: dir + "/j.log")
        XCTAssertEqual(k.entries.map(\.key), ["a", "b"])
        XCTAssertEqual(k.json("a"), 2)
        XCTAssertEqual(k.json("b"), ["x": "y"])
    }

    func testATornLastRecordIsDroppedAtEveryCutPoint() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/j.log"
        let j = try Journal(path: path)
        try j.append(key: "first", json: "one")
        let goodSize = FileIO.status(path)!.size
        try j.append(key: "second", json: "two")
        let full = try FileIO.read(path)
        for cut in Int(goodSize)..<full.count {
            try FileIO.writeAtomically(Array(full[0..<cut]), to: path, sync: false)
            let k = try Journal(path: path)
            XCTAssertEqual(k.entries.map(\.key), ["first"], "cut at \(cut)")
            XCTAssertEqual(k.droppedBytes, cut - Int(goodSize))
            // Appending after recovery works and is readable.
            try k.append(key: "third", json: 3)
            XCTAssertEqual(try Journal(path: path).entries.map(\.key), ["first", "third"])
        }
    }

    func testADamagedRecordEndsTheJournalThere() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/j.log"
        let j = try Journal(path: path)
        for i in 0..<5 { try j.append(key: "\(i)", json: .number(Double(i))) }
        var bytes = try FileIO.read(path)
        bytes[bytes.count - 3] ^= 0xFF
        try FileIO.writeAtomically(bytes, to: path, sync: false)
        XCTAssertEqual(try Journal(path: path).entries.map(\.key), ["0", "1", "2", "3"])
    }

    func testCheckpointsLoadTheNewestSoundOne() throws {
        let dir = try makeTempDir(self)
        let c = CheckpointStore(directory: dir + "/ckpt", keep: 2)
        XCTAssertNil(c.latest())
        try c.save(step: 10, state: Array("ten".utf8))
        try c.save(step: 20, state: Array("twenty".utf8))
        try c.save(step: 30, state: Array("thirty".utf8))
        XCTAssertEqual(c.latest()?.step, 30)
        XCTAssertFalse(FileIO.exists(dir + "/ckpt/step-10.ckpt"), "only the newest two are kept")
        try flipByte(in: dir + "/ckpt/step-30.ckpt", at: 60)
        XCTAssertEqual(c.latest()?.step, 20)
        XCTAssertEqual(c.latest()?.state, Array("twenty".utf8))
    }

    /// A checkpoint written as files (a state another process writes) is a sealed directory:
    /// the newest sound one of either form is loaded, a damaged file sends the load to the one
    /// before, and only the newest `keep` of both forms together are kept.
    func testCheckpointsAsSealedDirectories() throws {
        let dir = try makeTempDir(self)
        let c = CheckpointStore(directory: dir + "/ckpt", keep: 2)
        try c.save(step: 1, state: Array("one".utf8))
        try c.save(step: 2) { d in try FileIO.writeAtomically(Array("two".utf8), to: d + "/state.safetensors", sync: false) }
        guard case .directory(let path)? = c.latestState()?.state else { return XCTFail("step 2 is a directory") }
        XCTAssertEqual(path, dir + "/ckpt/step-2")
        XCTAssertEqual(try FileIO.read(path + "/state.safetensors"), Array("two".utf8))
        XCTAssertEqual(c.latest()?.state, Array("two".utf8), "a directory's one file reads as the state's bytes")
        try flipByte(in: path + "/state.safetensors", at: 1)
        var reported: [String] = []
        let found = c.latestState { p, problem in reported.append(Path.lastComponent(p) + ": " + problem) }
        XCTAssertEqual(found?.step, 1)
        XCTAssertEqual(reported, ["step-2: state.safetensors changed since it was kept (its SHA-256 differs: a changed byte)"])
        try c.save(step: 3) { d in try FileIO.writeAtomically(Array("three".utf8), to: d + "/state.safetensors", sync: false) }
        try c.save(step: 4, state: Array("four".utf8))
        XCTAssertEqual(try FileIO.listFiles(under: dir + "/ckpt").sorted(), ["step-3/.seal", "step-3/state.safetensors", "step-4.ckpt"])
        try c.save(step: 4) { d in try FileIO.writeAtomically(Array("FOUR".utf8), to: d + "/state.safetensors", sync: false) }
        XCTAssertFalse(FileIO.exists(dir + "/ckpt/step-4.ckpt"), "a step has one checkpoint")
        XCTAssertEqual(c.latest()?.state, Array("FOUR".utf8))
    }
}
