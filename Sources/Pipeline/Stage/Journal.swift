#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// An append-only log of finished items, so that a stage interrupted at any point (Ctrl-C,
/// a crash, `kill -9`) resumes where it stopped.
///
///     let j = try context.journal("items")
///     for q in questions where !j.contains(q.id) {
///         try j.append(key: q.id, value: try answer(q))
///     }
///     let all = j.entries        // every finished item, in the order it finished
///
/// File format: the magic line `HAPSJNL1\n`, then records of
/// `[u32 LE payload length][8 bytes SHA-256 prefix of payload][payload]`, where payload is
/// `[u32 LE key length][key UTF-8][value]`. Each record is written with one `write` and
/// `fdatasync`ed. On open, records are read until the first torn or damaged one, and the
/// file is truncated there: a half-written last record is dropped, never half-used.
///
/// Test-only: with `HAPS_TEST_KILL_AT=<journal>/<key>` in the environment (`evals/e@8`: the
/// record `e@8` of the journal `evals.log`), the process kills itself with SIGKILL right after
/// that record is durably written, so that a test can stop a real run exactly between a
/// journal write and what follows it (a step's checkpoint). Never set it otherwise.
public final class Journal: @unchecked Sendable {
    public let path: String
    /// The journal's name: its file name without `.log` (`evals`).
    public let name: String
    private let lock = Lock()
    private var fd: Int32 = -1
    private var order: [String] = []
    private var values: [String: [UInt8]] = [:]
    /// Bytes dropped from the end of the file on open (a torn last record), for reporting.
    public private(set) var droppedBytes = 0

    static let magic = Array("HAPSJNL1\n".utf8)

    /// `HAPS_TEST_KILL_AT` (test-only; see the type's comment).
    static let killAt: String? = getenv("HAPS_TEST_KILL_AT").map { String(cString: $0) }

    public init(path: String) throws {
        self.path = path
        let file = Path.lastComponent(path)
        name = file.hasSuffix(".log") ? String(file.dropLast(4)) : file
        try FileIO.makeDirectory(Path.directory(path))
        let existing = (try? FileIO.read(path)) ?? []
        var good = 0
        if existing.count >= Journal.magic.count && Array(existing[0..<Journal.magic.count]) == Journal.magic {
            good = Journal.magic.count
            var p = good
            while p + 12 <= existing.count {
                let len = Int(Journal.readU32(existing, p))
                let end = p + 12 + len
                guard end <= existing.count, len >= 4 else { break }
                let payload = Array(existing[(p + 12)..<end])
                guard Array(Digest.of(payload).hex.utf8.prefix(8)) == Array(existing[(p + 4)..<(p + 12)]) else { break }
                let klen = Int(Journal.readU32(payload, 0))
                guard 4 + klen <= payload.count else { break }
                let key = String(decoding: payload[4..<(4 + klen)], as: UTF8.self)
                if values[key] == nil { order.append(key) }
                values[key] = Array(payload[(4 + klen)...])
                p = end
                good = p
            }
        }
        droppedBytes = existing.count - good
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(path: path, operation: "open journal", errno: errno) }
        if good == 0 {
            ftruncate(fd, 0)
            try FileIO.writeAll(fd, Journal.magic, path: path)
        } else if droppedBytes > 0 {
            ftruncate(fd, off_t(good))
        }
        lseek(fd, 0, SEEK_END)
    }

    deinit { if fd >= 0 { close(fd) } }

    static func readU32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
    static func u32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8((v >> 24) & 0xFF)] }

    public var count: Int { lock.withLock { order.count } }
    public func contains(_ key: String) -> Bool { lock.withLock { values[key] != nil } }
    public func value(_ key: String) -> [UInt8]? { lock.withLock { values[key] } }
    /// Finished items in the order they were recorded.
    public var entries: [(key: String, value: [UInt8])] { lock.withLock { order.map { ($0, values[$0]!) } } }

    /// Records one finished item durably. Recording a key again replaces its value.
    public func append(key: String, value: [UInt8]) throws {
        let k = Array(key.utf8)
        let payload = Journal.u32(k.count) + k + value
        let record = Journal.u32(payload.count) + Array(Digest.of(payload).hex.utf8.prefix(8)) + payload
        try lock.withLock {
            try FileIO.writeAll(fd, record, path: path)
            if fdatasync(fd) != 0 { throw FileError(path: path, operation: "sync journal", errno: errno) }
            if values[key] == nil { order.append(key) }
            values[key] = value
        }
        if let target = Journal.killAt, target == name + "/" + key { kill(getpid(), SIGKILL) }  // test-only, see above
    }

    public func append(key: String, json: JSONValue) throws { try append(key: key, value: Array(json.canonical.utf8)) }
    public func json(_ key: String) -> JSONValue? { value(key).flatMap { try? JSONParser.parse(bytes: $0) } }
}

/// Checkpoints of a training-style stage: a state per step, written atomically, with a
/// digest that is checked on load, so a resumed run starts from the newest sound checkpoint.
///
///     if let (step, state) = context.checkpoints.latest(reporting: { context.log("\($0): \($1)") }) { restore(state) }
///     try context.checkpoints.save(step: step, state: serialize())
///     try context.checkpoints.save(step: step) { directory in try engine.saveState(to: directory + "/state.safetensors") }
///
/// A checkpoint is either a file `step-<step>.ckpt`, a sealed record (`encode`) of the step
/// and the state, or, for a state of gigabytes that another process writes (the torch
/// engine's worker), a directory `step-<step>/` sealed as a `SealedDirectory`. The `keep`
/// newest are kept, of either form.
public final class CheckpointStore: @unchecked Sendable {
    public let directory: String
    public let keep: Int
    static let magic = Array("HAPSCKP1".utf8)

    public init(directory: String, keep: Int = 2) {
        self.directory = directory; self.keep = max(1, keep)
    }

    /// The steps that have a checkpoint (a file or a directory), oldest first.
    private func steps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return Set(names.compactMap { n -> Int? in
            guard n.hasPrefix("step-") else { return nil }
            if n.hasSuffix(".ckpt") { return Int(n.dropFirst(5).dropLast(5)) }
            return FileIO.isDirectory("\(directory)/\(n)") ? Int(n.dropFirst(5)) : nil
        }).sorted()
    }

    private func path(_ step: Int) -> String { "\(directory)/step-\(step).ckpt" }
    private func directoryPath(_ step: Int) -> String { "\(directory)/step-\(step)" }

    public func save(step: Int, state: [UInt8]) throws {
        try FileIO.writeAtomically(CheckpointStore.encode(step: step, state: state), to: path(step))
        FileIO.remove(directoryPath(step))  // a step's checkpoint has one form
        prune()
    }

    /// Saves the checkpoint of `step` as a sealed directory of the files `fill` writes into the
    /// directory it is given (atomically: a crash leaves the old checkpoints and no new one).
    public func save(step: Int, fill: (String) throws -> Void) throws {
        try FileIO.makeDirectory(directory)
        try SealedDirectory(path: directoryPath(step)).replace(fill)
        FileIO.remove(path(step))
        prune()
    }

    /// Removes all but the `keep` newest checkpoints.
    private func prune() {
        for old in steps().dropLast(keep) { FileIO.remove(path(old)); FileIO.remove(directoryPath(old)) }
    }

    /// A checkpoint's state: the bytes of a record, or a sealed directory's path (checked).
    public enum State {
        case bytes([UInt8])
        case directory(String)

        /// The state's bytes, for a trainer that only takes bytes: a directory's one file.
        public func bytes() throws -> [UInt8] {
            switch self {
            case .bytes(let b): return b
            case .directory(let d):
                let files = try FileIO.listFiles(under: d).filter { $0 != SealedDirectory.sealName }
                guard files.count == 1 else { throw FileError(path: d, operation: "read a checkpoint", reason: "it holds \(files.count) files, not one") }
                return try FileIO.read(d + "/" + files[0])
            }
        }
    }

    /// The newest checkpoint that reads back intact, or nil when there is none. Each newer one
    /// that does not (truncated, a changed byte) is passed to `damaged` with what is wrong with
    /// it, before an older one is tried, so that the caller can say which it skipped.
    public func latestState(reporting damaged: (_ path: String, _ problem: String) -> Void = { _, _ in }) -> (step: Int, state: State)? {
        for step in steps().reversed() {
            let sealed = SealedDirectory(path: directoryPath(step))
            if sealed.exists {
                if let problem = sealed.problem() { damaged(sealed.path, problem); continue }
                return (step, .directory(sealed.path))
            }
            let bytes: [UInt8]
            do { bytes = try FileIO.read(path(step)) } catch {
                damaged(path(step), "unreadable: \(error)")
                continue
            }
            switch CheckpointStore.decode(bytes) {
            case .success(let record) where record.step == step: return (step, .bytes(record.state))
            case .success(let record): damaged(path(step), "it holds step \(record.step), not \(step)")
            case .failure(let problem): damaged(path(step), problem.description)
            }
        }
        return nil
    }

    /// `latestState` for checkpoints saved as bytes (a directory's one file is read whole).
    public func latest(reporting damaged: (_ path: String, _ problem: String) -> Void = { _, _ in }) -> (step: Int, state: [UInt8])? {
        guard let found = latestState(reporting: damaged) else { return nil }
        do { return (found.step, try found.state.bytes()) } catch {
            damaged(directoryPath(found.step), "unreadable: \(error)")
            return nil
        }
    }

    /// What is wrong with a sealed record, in words ("truncated: 100 of 4156 bytes").
    public struct Damage: Error, CustomStringConvertible {
        public let description: String
    }

    /// The one checksummed record format of work areas (checkpoints, and the seals of kept
    /// directories): magic `HAPSCKP1`, u64 LE step, u64 LE length, the state's 32-byte SHA-256,
    /// then the state.
    public static func encode(step: Int, state: [UInt8]) -> [UInt8] {
        var header = magic
        header += u64(step) + u64(state.count)
        let d = Digest.of(state)
        header += stride(from: 0, to: 64, by: 2).map { i -> UInt8 in
            let s = d.hex.utf8.dropFirst(i).prefix(2)
            return UInt8(String(decoding: s, as: UTF8.self), radix: 16)!
        }
        return header + state
    }

    /// The step and state of a record `encode` wrote, or what is wrong with `b`.
    public static func decode(_ b: [UInt8]) -> Result<(step: Int, state: [UInt8]), Damage> {
        guard b.count >= 8, Array(b[0..<8]) == magic else {
            return .failure(Damage(description: b.isEmpty ? "empty" : "not a checkpoint record (\(b.count) bytes)"))
        }
        guard b.count >= 56 else { return .failure(Damage(description: "truncated: \(b.count) bytes, its header alone has 56")) }
        let len = Int(clamping: readU64(b, 16))
        guard b.count == 56 + len else {
            return .failure(Damage(description: b.count < 56 + len ? "truncated: \(b.count) of \(56 + len) bytes" : "\(b.count - 56 - len) bytes more than its header says"))
        }
        let state = Array(b[56...])
        let stored = b[24..<56].map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        guard Digest.of(state).hex == stored else { return .failure(Damage(description: "its SHA-256 does not match its contents (a changed byte)")) }
        return .success((Int(clamping: readU64(b, 8)), state))
    }

    static func u64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8((UInt64(v) >> (8 * UInt64($0))) & 0xFF) } }
    static func readU64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }
}

/// A directory that a stage keeps in its work area between runs (a training stage's best
/// weights so far), sealed as checkpoints are: `replace` writes it whole and adds `.seal`, a
/// `CheckpointStore` record of every file's size and SHA-256; `problem()` reads everything back
/// and says what is wrong (a flipped bit, a truncated, missing or extra file, no seal), so that
/// a damaged one is never used.
///
///     let best = SealedDirectory(path: context.workDirectory + "/best")
///     if let problem = best.problem() { /* report it, rebuild */ }
///     try best.replace { tmp in try model.save(directory: tmp) }
///     let files = try best.verifiedFiles()     // without the seal
public struct SealedDirectory: Sendable {
    public let path: String
    /// The seal's file name inside the directory.
    public static let sealName = ".seal"

    public init(path: String) { self.path = path }

    /// Whether the directory is there (sound or not).
    public var exists: Bool { FileIO.isDirectory(path) }

    /// Replaces the directory with what `fill` writes into a fresh one, sealed, atomically (a
    /// crash leaves the old directory or the new one).
    public func replace(_ fill: (String) throws -> Void) throws {
        try FileIO.replaceDirectory(path) { tmp in
            try fill(tmp)
            let files = try FileIO.listFiles(under: tmp).filter { $0 != SealedDirectory.sealName }
            let manifest = JSONValue.object(try files.map { name -> (key: String, value: JSONValue) in
                let (size, digest) = try SealedDirectory.digest(ofFile: tmp + "/" + name)
                return (name, JSONValue.object([("size", .number(Double(size))), ("sha256", .string(digest.hex))]))
            })
            try FileIO.writeAtomically(CheckpointStore.encode(step: files.count, state: Array(manifest.canonical.utf8)),
                                       to: tmp + "/" + SealedDirectory.sealName)
        }
    }

    /// What is wrong with the directory, naming the file ("model.safetensors is truncated: 100
    /// of 383864 bytes"), or nil when it is sound or absent.
    public func problem() -> String? {
        guard exists else { return nil }
        let sealPath = path + "/" + SealedDirectory.sealName
        guard let bytes = try? FileIO.read(sealPath) else { return "it has no seal (\(SealedDirectory.sealName)): kept by an older haps-pipe, or changed by hand" }
        let sealed: [(key: String, value: JSONValue)]
        switch CheckpointStore.decode(bytes) {
        case .failure(let damage): return "its seal \(SealedDirectory.sealName) is damaged: \(damage)"
        case .success(let record):
            guard let m = try? JSONParser.parse(bytes: record.state), case .object(let entries) = m else { return "its seal does not list files" }
            sealed = entries
        }
        let present: [String]
        do { present = try FileIO.listFiles(under: path).filter { $0 != SealedDirectory.sealName } } catch { return "\(error)" }
        let names = Set(sealed.map(\.key))
        if let extra = present.first(where: { !names.contains($0) }) { return "\(extra) is not one of the files it was sealed with" }
        for (name, entry) in sealed {
            guard let size = entry["size"]?.intValue, let sha = entry["sha256"]?.stringValue else { return "its seal's entry for \(name) is incomplete" }
            guard let found = FileIO.status(path + "/" + name) else { return "\(name) is missing" }
            if found.size != Int64(size) {
                return "\(name) " + (found.size < Int64(size) ? "is truncated: \(found.size) of \(size) bytes" : "has \(found.size) bytes, sealed with \(size)")
            }
            guard let (_, digest) = try? SealedDirectory.digest(ofFile: path + "/" + name) else { return "\(name) cannot be read" }
            if digest.hex != sha { return "\(name) changed since it was kept (its SHA-256 differs: a changed byte)" }
        }
        return nil
    }

    /// The directory's files (relative paths, without the seal), after checking them all; a
    /// damaged directory is an error that names it and what is wrong.
    public func verifiedFiles() throws -> [String] {
        if let problem = problem() { throw FileError(path: path, operation: "use the kept directory", reason: problem) }
        return try FileIO.listFiles(under: path).filter { $0 != SealedDirectory.sealName }
    }

    /// A file's size and SHA-256, read in chunks (model weights are large).
    static func digest(ofFile path: String) throws -> (size: Int, digest: Digest) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileError(path: path, operation: "read", errno: errno) }
        defer { close(fd) }
        var hasher = DigestBuilder(), size = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path: path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            size += n
        }
        return (size, hasher.finalize())
    }
}
