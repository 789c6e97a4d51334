import XCTest
@testable import Pipeline

final class StoreTests: XCTestCase {
    func testObjectsRoundTripThroughLZ4AndTheLZ4ToolReadsThem() throws {
        let dir = try makeTempDir(self)
        let store = try Store(root: dir + "/store")
        for n in [0, 1, 1000, 5_000_000] {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
            let d = try store.putObject(bytes)
            XCTAssertEqual(try store.object(d), bytes)
        }
        let text = Array(String(repeating: "haps-pipe ", count: 1000).utf8)
        let d = try store.putObject(text)
        XCTAssertLessThan(FileIO.status(store.objectPath(d))!.size, 200, "repetitive text compresses")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/lz4") else { throw XCTSkip("lz4 tool not installed") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/lz4")
        p.arguments = ["-d", "-c", store.objectPath(d)]
        let pipe = Pipe(); p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(Array(out), text)
    }

    func testAFlippedByteIsDetectedAndTheObjectQuarantined() throws {
        let dir = try makeTempDir(self)
        let store = try Store(root: dir + "/store")
        let d = try store.putObject(Array("some content that matters".utf8))
        try flipByte(in: store.objectPath(d), at: 20)
        XCTAssertThrowsError(try store.object(d)) { e in
            XCTAssertEqual((e as? StoreError)?.code, .corruptObject)
            XCTAssertTrue((e as! StoreError).message.hasPrefix("object \(d.short) is corrupt"), "\(e)")
        }
        XCTAssertFalse(store.hasObject(d), "a corrupt object is never read again")
        XCTAssertThrowsError(try store.object(d)) { e in XCTAssertEqual((e as? StoreError)?.code, .missingObject) }
    }

    func testIngestAndMaterializeDirectories() throws {
        let dir = try makeTempDir(self)
        let store = try Store(root: dir + "/store")
        try write("one", to: dir + "/out/a.txt")
        try write("two", to: dir + "/out/sub/b.txt")
        let d = try store.ingest(directory: dir + "/out", kind: "files")
        let m = try store.manifest(d)
        XCTAssertEqual(m.files.keys.sorted(), ["a.txt", "sub/b.txt"])
        let tree = try store.materialize(d)
        XCTAssertEqual(try read(tree + "/sub/b.txt"), "two")
        // Same content, same digest, wherever it comes from.
        try write("one", to: dir + "/out2/a.txt")
        try write("two", to: dir + "/out2/sub/b.txt")
        XCTAssertEqual(try store.ingest(directory: dir + "/out2", kind: "files"), d)
        XCTAssertNotEqual(try store.ingest(directory: dir + "/out2", kind: "other"), d, "the kind is part of the content")
    }

    func testExternalInputsAreHashedOnceUntilTheyChange() throws {
        let dir = try makeTempDir(self)
        let store = try Store(root: dir + "/store")
        try write("v1", to: dir + "/data.txt")
        let a = try store.importExternal(path: dir + "/data.txt", kind: "text")
        XCTAssertEqual(try store.importExternal(path: dir + "/data.txt", kind: "text"), a)
        try write("v2", to: dir + "/data.txt")
        let b = try store.importExternal(path: dir + "/data.txt", kind: "text")
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(try store.manifest(b).files["data.txt"]?.digest, Digest.of(Array("v2".utf8)))
    }

    func testGarbageCollectionKeepsWhatRefsReach() throws {
        let dir = try makeTempDir(self)
        let store = try Store(root: dir + "/store")
        let spec = try load(#"{"name": "p", "stages": {"a": {"type": "text-source", "params": {"text": "hello"}}}}"#, dir: dir)
        try runPipeline(spec, store: store)
        let spec2 = try load(#"{"name": "p", "stages": {"a": {"type": "text-source", "params": {"text": "world"}}}}"#, dir: dir)
        let s2 = try runPipeline(spec2, store: store)
        let dry = try store.collectGarbage(dryRun: true)
        XCTAssertEqual(dry.removedObjects, 2, "the old output's manifest and file")
        XCTAssertEqual(dry.removedActions, 1)
        // A half-written object left by a killed process is garbage too.
        let leftover = store.objectPath(s2.result("a")!.output!) + ".tmp-99999-1"
        try write("partial", to: leftover)
        let r = try store.collectGarbage()
        XCTAssertEqual(r.removedTemporaries, 1)
        XCTAssertFalse(FileIO.exists(leftover))
        XCTAssertEqual(r.removedObjects, 2)
        XCTAssertEqual(r.keptObjects, 2)
        XCTAssertEqual(try read(try store.materialize(s2.result("a")!.output!) + "/text.txt"), "world")
        // The old configuration now recomputes instead of using a dangling entry.
        XCTAssertEqual(try runPipeline(spec, store: store).outcomes()["a"], "ran")
    }
}

func flipByte(in path: String, at offset: Int) throws {
    chmod(path, 0o644)
    var bytes = try FileIO.read(path)
    bytes[min(offset, bytes.count - 1)] ^= 0x40
    let h = FileHandle(forWritingAtPath: path)!
    try h.write(contentsOf: bytes)
    try h.close()
}

final class CallMemoTests: XCTestCase {
    func testRecordsAreSeenByLaterProcessesAndEachWriterHasItsOwnLog() throws {
        let dir = try makeTempDir(self)
        let a = try Store(root: dir + "/store"), b = try Store(root: dir + "/store")
        let k1 = Digest.of(string: "call one"), k2 = Digest.of(string: "call two")
        XCTAssertNil(a.memo(k1))
        try a.recordMemo(k1, ["text": "first \"quoted\"\nline", "prompt_tokens": 3])
        XCTAssertEqual(a.memo(k1)?["text"]?.stringValue, "first \"quoted\"\nline", "the writer sees its own record")
        try b.recordMemo(k2, ["text": "second"])
        try b.recordMemo(k1, ["text": "a later answer to the same call"])
        let logs = try FileIO.listFiles(under: dir + "/store/memo")
        XCTAssertEqual(logs.count, 2, "one log per writing store: \(logs)")
        let c = try Store(root: dir + "/store")
        XCTAssertEqual(c.callMemo.count, 2)
        XCTAssertEqual(c.memo(k2)?["text"]?.stringValue, "second")
        XCTAssertEqual(c.memo(k1)?["prompt_tokens"]?.intValue, 3)
    }

    func testATornLastLineAndADamagedRecordReadAsAbsent() throws {
        let dir = try makeTempDir(self)
        let store = try Store(root: dir + "/store")
        let keys = (0..<3).map { Digest.of(string: "call \($0)") }
        for (i, k) in keys.enumerated() { try store.recordMemo(k, ["text": .string("reply \(i)")]) }
        let log = dir + "/store/memo/" + (try FileIO.listFiles(under: dir + "/store/memo"))[0]
        var bytes = try FileIO.read(log)
        // Damage the first record's value, and cut the last line short (a kill -9 mid-write).
        let firstValue = bytes.firstIndex(of: UInt8(ascii: "r"))!
        bytes[firstValue] = UInt8(ascii: "\"")
        bytes.removeLast(5)
        try FileIO.writeAtomically(bytes, to: log)
        let reopened = try Store(root: dir + "/store")
        XCTAssertNil(reopened.memo(keys[0]), "a record that does not parse is absent")
        XCTAssertEqual(reopened.memo(keys[1])?["text"]?.stringValue, "reply 1")
        XCTAssertNil(reopened.memo(keys[2]), "a torn last line is ignored")
        try reopened.recordMemo(keys[2], ["text": "reply 2 again"])
        XCTAssertEqual(try Store(root: dir + "/store").memo(keys[2])?["text"]?.stringValue, "reply 2 again")
    }
}
