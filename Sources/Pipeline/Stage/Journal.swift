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
public final class Journal: @unchecked Sendable {
    public let path: String
    private let lock = Lock()
    private var fd: Int32 = -1
    private var order: [String] = []
    private var values: [String: [UInt8]] = [:]
    /// Bytes dropped from the end of the file on open (a torn last record), for reporting.
    public private(set) var droppedBytes = 0

    static let magic = Array("HAPSJNL1\n".utf8)

    public init(path: String) throws {
        self.path = path
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
    }

    public func append(key: String, json: JSONValue) throws { try append(key: key, value: Array(json.canonical.utf8)) }
    public func json(_ key: String) -> JSONValue? { value(key).flatMap { try? JSONParser.parse(bytes: $0) } }
}

/// Checkpoints of a training-style stage: a state blob per step, written atomically, with a
/// digest that is checked on load, so a resumed run starts from the newest sound checkpoint.
///
///     if let (step, state) = try context.checkpoints.latest() { restore(state); start = step }
///     try context.checkpoints.save(step: step, state: serialize())
///
/// File `step-<step>.ckpt`: magic `HAPSCKP1`, u64 LE step, u64 LE length, 32-byte SHA-256,
/// then the state. The `keep` newest are kept.
public final class CheckpointStore: @unchecked Sendable {
    public let directory: String
    public let keep: Int
    static let magic = Array("HAPSCKP1".utf8)

    public init(directory: String, keep: Int = 2) {
        self.directory = directory; self.keep = max(1, keep)
    }

    private func steps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { n -> Int? in
            guard n.hasPrefix("step-"), n.hasSuffix(".ckpt") else { return nil }
            return Int(n.dropFirst(5).dropLast(5))
        }.sorted()
    }

    private func path(_ step: Int) -> String { "\(directory)/step-\(step).ckpt" }

    public func save(step: Int, state: [UInt8]) throws {
        var header = CheckpointStore.magic
        header += CheckpointStore.u64(step) + CheckpointStore.u64(state.count)
        let d = Digest.of(state)
        header += stride(from: 0, to: 64, by: 2).map { i -> UInt8 in
            let s = d.hex.utf8.dropFirst(i).prefix(2)
            return UInt8(String(decoding: s, as: UTF8.self), radix: 16)!
        }
        try FileIO.writeAtomically(header + state, to: path(step))
        for old in steps().dropLast(keep) { unlink(path(old)) }
    }

    /// The newest checkpoint that reads back intact, or nil when there is none.
    public func latest() -> (step: Int, state: [UInt8])? {
        for step in steps().reversed() {
            guard let b = try? FileIO.read(path(step)), b.count >= 56, Array(b[0..<8]) == CheckpointStore.magic else { continue }
            let len = Int(CheckpointStore.readU64(b, 16))
            guard b.count == 56 + len else { continue }
            let state = Array(b[56...])
            let d = Digest.of(state)
            let stored = b[24..<56].map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            guard d.hex == stored, Int(CheckpointStore.readU64(b, 8)) == step else { continue }
            return (step, state)
        }
        return nil
    }

    static func u64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8((UInt64(v) >> (8 * UInt64($0))) & 0xFF) } }
    static func readU64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }
}
