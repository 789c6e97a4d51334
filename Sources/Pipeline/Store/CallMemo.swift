#if canImport(Glibc)
import Glibc
#endif

/// Model calls are recorded facts (docs/store.md, The call memo): a reply, keyed by everything that determines
/// it (model identity, generation settings with the seed, the messages, a LoRA digest if any),
/// is stored once and replayed by every later run, resumed run, sweep point or stage that asks
/// the same thing.
///
/// The memo is a set of append-only logs, `memo/<pid>-<random>.log`, one per process that wrote
/// to it, so that concurrent processes never share a file. A record is one line
/// `{"key":"<64 hex>","value":<canonical JSON>}` written with a single `write`; a torn last line
/// (a killed process) is ignored. On first use a process indexes every log (key → place; values
/// stay on disk and are read on a hit), so a call costs one `write` and a replay one `pread`,
/// not a file per entry. Entries another process writes after that are not seen until the next
/// run (at worst the same call is made twice; the first record of a key wins).
public final class CallMemo: @unchecked Sendable {
    public let directory: String
    private let lock = Lock()
    private struct Place { var file: Int; var offset: Int; var length: Int }
    private var index: [String: Place]?
    private var files: [(path: String, fd: Int32)] = []
    private var writer: (file: Int, size: Int)?

    init(directory: String) { self.directory = directory }

    deinit { for f in files where f.fd >= 0 { close(f.fd) } }

    static let prefix = Array(#"{"key":""#.utf8)
    static let middle = Array(#"","value":"#.utf8)

    /// The recorded value for `key`, if any (a damaged record reads as absent).
    public func value(_ key: Digest) -> JSONValue? {
        let found: (Int32, Place)? = lock.withLock {
            loadIfNeeded()
            guard let p = index?[key.hex] else { return nil }
            return (files[p.file].fd, p)
        }
        guard let (fd, place) = found, fd >= 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: place.length)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, place.length, off_t(place.offset)) }
        guard n == place.length else { return nil }
        return try? JSONParser.parse(bytes: bytes)
    }

    /// Appends a record to this process's log (created on the first record).
    public func record(_ key: Digest, _ value: JSONValue) throws {
        let valueBytes = Array(value.canonical.utf8)
        let line = CallMemo.prefix + Array(key.hex.utf8) + CallMemo.middle + valueBytes + Array("}\n".utf8)
        try lock.withLock {
            loadIfNeeded()
            if index?[key.hex] != nil { return }
            let w = try openWriter()
            let path = files[w.file].path
            try FileIO.writeAll(files[w.file].fd, line, path: path)
            index?[key.hex] = Place(file: w.file, offset: w.size + CallMemo.prefix.count + 64 + CallMemo.middle.count, length: valueBytes.count)
            writer = (w.file, w.size + line.count)
        }
    }

    /// Number of distinct recorded calls (loads the index).
    public var count: Int { lock.withLock { loadIfNeeded(); return index?.count ?? 0 } }

    private func openWriter() throws(FileError) -> (file: Int, size: Int) {
        if let writer { return writer }
        try FileIO.makeDirectory(directory)
        let path = "\(directory)/\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16)).log"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(path: path, operation: "create", errno: errno) }
        files.append((path, fd))
        let w = (file: files.count - 1, size: 0)
        writer = w
        return w
    }

    /// Must hold the lock.
    private func loadIfNeeded() {
        guard index == nil else { return }
        var found: [String: Place] = [:]
        let names = ((try? FileIO.listFiles(under: directory)) ?? []).filter { $0.hasSuffix(".log") && !$0.contains("/") }
        for name in names {
            let path = "\(directory)/\(name)"
            guard let bytes = try? FileIO.read(path) else { continue }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            files.append((path, fd))
            let file = files.count - 1
            let head = CallMemo.prefix.count, keyEnd = head + 64, valueStart = keyEnd + CallMemo.middle.count
            var start = 0
            bytes.withUnsafeBufferPointer { b in
                while start < b.count {
                    guard let nl = b[start...].firstIndex(of: 0x0A) else { break }  // torn last line
                    defer { start = nl + 1 }
                    let length = nl - start
                    guard length > valueStart + 1, b[nl - 1] == 0x7D,
                          b[start..<(start + head)].elementsEqual(CallMemo.prefix),
                          b[(start + keyEnd)..<(start + valueStart)].elementsEqual(CallMemo.middle) else { continue }
                    let key = String(decoding: b[(start + head)..<(start + keyEnd)], as: UTF8.self)
                    if found[key] == nil {
                        found[key] = Place(file: file, offset: start + valueStart, length: length - valueStart - 1)
                    }
                }
            }
        }
        index = found
    }
}

extension Store {
    /// The recorded value for `key`, if any (a damaged record reads as absent).
    public func memo(_ key: Digest) -> JSONValue? { callMemo.value(key) }

    public func recordMemo(_ key: Digest, _ value: JSONValue) throws { try callMemo.record(key, value) }
}
