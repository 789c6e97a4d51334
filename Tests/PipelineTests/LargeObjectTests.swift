import XCTest
@testable import Pipeline

/// Large files (model weights): stored once, raw and sealed, streamed, hard-linked into trees.
/// The threshold is 1 MiB here (`Store(largeFileBytes:)`), so the files are a few MiB.
final class LargeObjectTests: XCTestCase {
    static let threshold: Int64 = 1 << 20

    /// `count` bytes that do not compress (a model's weights do not either).
    func weights(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    func makeModel(_ dir: String, bytes: [UInt8]) throws {
        try write(#"{"hidden": 8}"#, to: dir + "/config.json")
        try FileIO.writeAtomically(bytes, to: dir + "/model.safetensors")
    }

    func links(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_nlink) : -1
    }

    func testALargeFileIsStoredOnceRawWithItsDigestAndHardLinkedIntoItsTree() throws {
        let dir = try makeTempDir(self)
        let bytes = weights(3 << 20 + 17)
        try makeModel(dir + "/model", bytes: bytes)
        let store = try Store(root: dir + "/store", largeFileBytes: Self.threshold)
        let a = try store.importExternal(path: dir + "/model", kind: "model")
        let entry = try XCTUnwrap(try store.manifest(a).files["model.safetensors"])
        XCTAssertEqual(entry.digest, Digest.of(bytes), "the same SHA-256 as the whole bytes'")
        XCTAssertEqual(entry.size, Int64(bytes.count))
        XCTAssertEqual(try FileStream.hash(dir + "/model/model.safetensors"), FileStream.Summary(digest: Digest.of(bytes), size: Int64(bytes.count)))
        XCTAssertTrue(store.isRawObject(entry.digest))
        XCTAssertFalse(store.isRawObject(try store.manifest(a).files["config.json"]!.digest), "small files stay LZ4 objects")
        let object = store.rawObjectPath(entry.digest)
        XCTAssertEqual(FileIO.status(object)?.size, Int64(bytes.count), "stored as it is")
        XCTAssertEqual(FileIO.status(object)?.permissions, 0o444)
        XCTAssertFalse(FileIO.exists(store.lz4ObjectPath(entry.digest)))
        XCTAssertEqual(try store.object(entry.digest), bytes)
        XCTAssertEqual(try store.resolveDigestPrefix(String(entry.digest.hex.prefix(10))), entry.digest)

        // The artifact's digest (and so every stage key) is what the LZ4-only store gives.
        let plain = try Store(root: dir + "/plain")
        XCTAssertEqual(try plain.importExternal(path: dir + "/model", kind: "model"), a)
        XCTAssertFalse(plain.isRawObject(entry.digest))

        let tree = try store.materialize(a)
        XCTAssertEqual(try FileIO.read(tree + "/model.safetensors"), bytes)
        XCTAssertEqual(FileIO.status(tree + "/model.safetensors")?.inode, FileIO.status(object)?.inode, "a hard link, not a copy")
        XCTAssertEqual(links(object), 2)
        let stored = try FileIO.listFiles(under: dir + "/store/objects").filter { $0.contains(String(entry.digest.hex.dropFirst(2))) }
        XCTAssertEqual(stored.count, 1, "one copy in the store: \(stored)")
        XCTAssertNil(store.changedTree(a))
        XCTAssertEqual(try store.materialize(a), tree, "a tree that matches its stamp is reused")
    }

    func testAStageOutputOverTheThresholdIsStoredRawUnderTheSameDigest() throws {
        let dir = try makeTempDir(self)
        let bytes = weights(2 << 20, seed: 2)
        try makeModel(dir + "/out", bytes: bytes)
        let store = try Store(root: dir + "/store", largeFileBytes: Self.threshold)
        let d = try store.ingest(directory: dir + "/out", kind: "model")
        XCTAssertEqual(d, try Store(root: dir + "/plain").ingest(directory: dir + "/out", kind: "model"))
        let entry = try store.manifest(d).files["model.safetensors"]!
        XCTAssertTrue(store.isRawObject(entry.digest))
        XCTAssertEqual(try store.ingest(directory: dir + "/out", kind: "model"), d, "stored again: the object is reused")
        XCTAssertEqual(try FileIO.listFiles(under: dir + "/store/objects").filter { $0.hasSuffix(".raw") }.count, 1)
        XCTAssertFalse(try FileIO.listFiles(under: dir + "/store/objects").contains { $0.contains(".tmp-") }, "the second copy was dropped")
        let copy = dir + "/exported"
        try store.copy(artifact: d, to: copy)
        XCTAssertEqual(try FileIO.read(copy + "/model.safetensors"), bytes)
        XCTAssertEqual(FileIO.status(copy + "/model.safetensors")?.permissions, 0o644, "an export is a writable copy")
    }

    func testAWriteThroughTheTreeIsDetectedTheObjectQuarantinedAndTheInputStoredAgain() throws {
        let dir = try makeTempDir(self)
        let bytes = weights(2 << 20 + 5, seed: 3)
        try makeModel(dir + "/model", bytes: bytes)
        let store = try Store(root: dir + "/store", largeFileBytes: Self.threshold)
        let a = try store.importExternal(path: dir + "/model", kind: "model")
        let digest = try store.manifest(a).files["model.safetensors"]!.digest
        let tree = try store.materialize(a)
        try flipByte(in: tree + "/model.safetensors", at: 1000)  // the object's inode too
        XCTAssertEqual(store.changedTree(a), "'model.safetensors' was changed")
        XCTAssertThrowsError(try store.materialize(a)) { e in
            XCTAssertEqual((e as? StoreError)?.code, .corruptObject)
            XCTAssertTrue((e as! StoreError).message.hasPrefix("object \(digest.short) is corrupt"), "\(e)")
        }
        XCTAssertFalse(store.hasObject(digest), "a damaged object is never used again")
        XCTAssertEqual(try FileIO.listFiles(under: dir + "/store/corrupt").count, 1, "kept aside for inspection")
        // The user's file has not changed (its stat record matches), but its copy is gone: read again.
        XCTAssertEqual(try store.importExternal(path: dir + "/model", kind: "model"), a)
        XCTAssertEqual(try FileIO.read(try store.materialize(a) + "/model.safetensors"), bytes)
    }

    func testADamagedRawObjectOfACachedOutputIsFoundAndTheStageRerun() throws {
        let dir = try makeTempDir(self)
        try makeModel(dir + "/model", bytes: weights(2 << 20, seed: 4))
        let store = try Store(root: dir + "/store", largeFileBytes: Self.threshold)
        let spec = try load(#"{"name": "p", "stages": {"copy": {"type": "command", "inputs": {"model": "model"}, "params": {"run": "cat {inputs.model}/model.safetensors {inputs.model}/config.json > {outputs.copy.bin}", "outputs": ["copy.bin"]}}}}"#, dir: dir)
        let first = try runPipeline(spec, store: store)
        XCTAssertEqual(first.outcomes()["copy"], "ran")
        let out = try store.manifest(first.result("copy")!.output!).files["copy.bin"]!.digest
        XCTAssertTrue(store.isRawObject(out))
        XCTAssertEqual(try runPipeline(spec, store: store).outcomes()["copy"], "cached")
        try flipByte(in: store.rawObjectPath(out), at: 77)
        XCTAssertNil(store.objectsPresent(store.action(first.result("copy")!.key!)!), "the same size: present")
        let observer = RecordingObserver()
        XCTAssertEqual(try runPipeline(spec, store: store, observer: observer).outcomes()["copy"], "ran", "\(observer.messages)")
        XCTAssertTrue(observer.messages.isEmpty && store.ref(pipeline: "p", stage: "copy")!.reason.contains { $0.contains("object \(out.short) is corrupt") },
                      "\(store.ref(pipeline: "p", stage: "copy")!.reason)")
        XCTAssertEqual(try store.object(out).count, 2 << 20 + 13, "stored again, intact")
    }

    func testGarbageCollectionRemovesAnUnreferencedRawObjectAndAHalfWrittenCopy() throws {
        let dir = try makeTempDir(self)
        try makeModel(dir + "/model", bytes: weights(2 << 20, seed: 5))
        let store = try Store(root: dir + "/store", largeFileBytes: Self.threshold)
        let kept = try store.importExternal(path: dir + "/model", kind: "model")
        try makeModel(dir + "/other", bytes: weights(3 << 20, seed: 6))
        let dropped = try store.importExternal(path: dir + "/other", kind: "model")
        let droppedRaw = store.rawObjectPath(try store.manifest(dropped).files["model.safetensors"]!.digest)
        _ = try store.materialize(dropped)
        try write("partial", to: dir + "/store/objects/.tmp-99999-1")
        let r = try store.collectGarbage(extraRoots: [kept])
        XCTAssertFalse(FileIO.exists(droppedRaw))
        XCTAssertEqual(r.removedObjects, 2, "the unreferenced manifest and its raw file (config.json is the kept one's)")
        XCTAssertEqual(r.removedTrees, 1)
        XCTAssertGreaterThanOrEqual(r.removedBytes, 3 << 20)
        XCTAssertEqual(r.removedTemporaries, 1)
        XCTAssertFalse(FileIO.exists(dir + "/store/objects/.tmp-99999-1"))
        XCTAssertTrue(store.isRawObject(try store.manifest(kept).files["model.safetensors"]!.digest), "a root's raw object stays")
    }

    func testAPrivateLargeInputStaysOwnerOnly() throws {
        let dir = try makeTempDir(self)
        let bytes = weights(2 << 20, seed: 7)
        try makeModel(dir + "/model", bytes: bytes)
        chmod(dir + "/model/model.safetensors", 0o600)
        let store = try Store(root: dir + "/store", largeFileBytes: Self.threshold)
        let a = try store.importExternal(path: dir + "/model", kind: "model")
        let digest = try store.manifest(a).files["model.safetensors"]!.digest
        XCTAssertTrue(store.isPrivateObject(digest))
        XCTAssertEqual(FileIO.status(store.rawObjectPath(digest))?.permissions, 0o400)
        let tree = try store.materialize(a)
        XCTAssertEqual(FileIO.status(tree + "/model.safetensors")?.permissions, 0o400)
        XCTAssertEqual(FileIO.status(tree + "/config.json")?.permissions, 0o444, "a public file stays public")
        try store.copy(artifact: a, to: dir + "/exported")
        XCTAssertEqual(FileIO.status(dir + "/exported/model.safetensors")?.permissions, 0o600)
        XCTAssertEqual(try FileIO.read(dir + "/exported/model.safetensors"), bytes)
    }
}
