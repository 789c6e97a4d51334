#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// An I/O failure with the path and the operation, as users need to act on it.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var operation: String
    public var reason: String
    /// The line (from 1) a problem with a file's content is on.
    public var line: Int?
    public init(path: String, operation: String, reason: String, line: Int? = nil) {
        self.path = path; self.operation = operation; self.reason = reason; self.line = line
    }
    public init(path: String, operation: String, errno code: Int32) {
        self.init(path: path, operation: operation, reason: String(cString: strerror(code)))
    }
    public var description: String {
        if let line { return "\(path):\(line): \(reason)" }
        return "cannot \(operation) \(path): \(reason)"
    }
}

/// Path string helpers (what NSString offers, without Foundation).
public enum Path {
    /// "a/b/c.txt" → "a/b"; "c.txt" → ""; "/c" → "/".
    public static func directory(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        return slash == p.startIndex ? "/" : String(p[..<slash])
    }
    /// "a/b/c.txt" → "c.txt".
    public static func lastComponent(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return String(p) }
        return String(p[p.index(after: slash)...])
    }
}

/// Small, fast POSIX file helpers used by the store: whole-file reads, atomic writes, stat.
public enum FileIO {
    public static func read(_ path: String) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw FileError(path: path, operation: "stat", errno: errno) }
        // The size says how much to read; a file that grew meanwhile, or one that reports no
        // size (/proc), is read on to its end.
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        var chunk = [UInt8]()
        while true {
            let n: Int
            if done < out.count {
                n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, $0.count - done) }
            } else {
                if chunk.isEmpty { chunk = [UInt8](repeating: 0, count: 1 << 16) }
                n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
                if n > 0 { out.append(contentsOf: chunk[0..<n]) }
            }
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, operation: "read", errno: errno) }
            if n == 0 { break }
            done += n
        }
        if done < out.count { out.removeSubrange(done...) }
        return out
    }

    /// A text file, which must be UTF-8: invalid bytes are an error naming the line (as
    /// Python's text mode raises), never silently replaced.
    public static func readString(_ path: String) throws(FileError) -> String {
        let bytes = try read(path)
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        // Find the line: a newline byte never occurs inside a multi-byte sequence.
        var number = 1
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            var parser = Unicode.UTF8.ForwardParser(), bytesIn = line.makeIterator(), offset = 0
            scan: while true {
                switch parser.parseScalar(from: &bytesIn) {
                case .valid(let scalar): offset += scalar.count
                case .emptyInput: break scan
                case .error:
                    let byte = line[line.startIndex + offset]
                    throw FileError(path: path, operation: "read", reason: "invalid UTF-8 (byte 0x\(String(byte, radix: 16)) at byte \(offset + 1) of the line); the file must be UTF-8 text", line: number)
                }
            }
            number += 1
        }
        throw FileError(path: path, operation: "read", reason: "invalid UTF-8")
    }

    /// The lines of a text as Python's text mode reads them: ends are "\n", "\r\n" or "\r"
    /// (a file from a Windows tool reads the same as one from Unix). A final line end does
    /// not start a further line.
    public static func lines(_ text: String) -> [Substring] {
        var out = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        if let last = out.last, last.isEmpty { out.removeLast() }
        return out
    }

    /// The last `count` lines of a log (a program's output, any bytes: invalid UTF-8 is
    /// replaced), or nil when it cannot be read. What a failure report quotes.
    public static func lastLines(of path: String, count: Int) -> [Substring]? {
        guard let bytes = try? read(path) else { return nil }
        return Array(String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).suffix(count))
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Bytes free to an unprivileged user on the file system holding `path`.
    public static func freeBytes(_ path: String) -> UInt64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }

    /// The absolute path with every symbolic link resolved; nil when it does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = Glibc.stat()
        return fstatat(AT_FDCWD, path, &st, 0) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Writes through a temporary file in the same directory, fsyncs it and renames it into
    /// place, so a reader (or a crash) sees either the old file or the whole new one.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644, sync: Bool = true) throws(FileError) {
        let dir = Path.directory(path)
        try makeDirectory(dir)
        let tmp = "\(path).tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 { throw FileError(path: tmp, operation: "create", errno: errno) }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        do {
            defer { close(fd) }
            try writeAll(fd, bytes, path: tmp)
            if sync && fsync(fd) != 0 { throw FileError(path: tmp, operation: "fsync", errno: errno) }
        }
        if rename(tmp, path) != 0 { throw FileError(path: path, operation: "rename into", errno: errno) }
        ok = true
    }

    public static func writeAtomically(_ text: String, to path: String, sync: Bool = true) throws(FileError) {
        try writeAtomically(Array(text.utf8), to: path, sync: sync)
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(FileError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, operation: "write", errno: errno) }
            done += n
        }
    }

    /// Creates a directory and its missing parents (as `mkdir -p`); a failure names the
    /// directory that could not be made and why ("Permission denied", "Read-only file system").
    public static func makeDirectory(_ path: String) throws(FileError) {
        if path.isEmpty || isDirectory(path) { return }
        let parent = Path.directory(path)
        if FileIO.exists(parent) && !isDirectory(parent) {
            throw FileError(path: path, operation: "create directory", reason: "\(parent) is a file, not a directory")
        }
        if !parent.isEmpty && parent != path { try makeDirectory(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw FileError(path: path, operation: "create directory", errno: errno)
        }
        if !isDirectory(path) { throw FileError(path: path, operation: "create directory", reason: "a file of that name is in the way") }
    }

    public static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Fills a fresh directory next to `path` with `fill`, then puts it in place of `path` (a
    /// crash leaves the old directory or the new one, never half of the new one).
    public static func replaceDirectory(_ path: String, _ fill: (String) throws -> Void) throws {
        let tmp = path + ".tmp"
        remove(tmp)
        try makeDirectory(tmp)
        try fill(tmp)
        remove(path)
        guard rename(tmp, path) == 0 else { throw FileError(path: path, operation: "create", errno: errno) }
    }

    /// Removes a tree whose directories may be read-only (an unpacked artifact): makes them
    /// writable first, so that the removal works for a user who is not root too.
    public static func removeTree(_ path: String) {
        forEachDirectory(under: path) { chmod($0, 0o755) }
        remove(path)
    }

    /// Makes every directory under `path` (and itself) read-only: nothing can be added,
    /// renamed or removed in it (except by root).
    public static func setDirectoriesReadOnly(_ path: String) {
        forEachDirectory(under: path) { chmod($0, 0o555) }
    }

    private static func forEachDirectory(under path: String, _ body: (String) -> Void) {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
        body(path)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            forEachDirectory(under: path + "/" + name, body)
        }
    }

    /// The identity fields of a file that change when it is rewritten (used by stat caches),
    /// and its permission bits.
    public struct Stat: Equatable, Sendable, Codable {
        public var size: Int64
        public var mtimeNanos: Int64
        public var inode: UInt64
        public var isDirectory: Bool
        public var isExecutable: Bool
        /// When the inode last changed: a write, or metadata such as an mtime set back by
        /// `cp -p` or `touch -d`, which the mtime alone does not show (git's index keeps it too).
        public var ctimeNanos: Int64 = 0
        /// The permission bits (`st_mode & 0o7777`).
        public var permissions: UInt32 = 0o644
    }

    public static func status(_ path: String) -> Stat? {
        var st = Glibc.stat()
        guard fstatat(AT_FDCWD, path, &st, 0) == 0 else { return nil }
        return Stat(size: Int64(st.st_size),
                    mtimeNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                    inode: UInt64(st.st_ino),
                    isDirectory: (st.st_mode & S_IFMT) == S_IFDIR,
                    isExecutable: (st.st_mode & S_IXUSR) != 0,
                    ctimeNanos: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec),
                    permissions: UInt32(st.st_mode & 0o7777))
    }

    /// Regular files under `root`, as sorted relative paths. A symbolic link is followed only
    /// when what it points to is inside `root` (a file is listed under the link's name, a
    /// directory is walked); a link that leads out of `root` and a directory link back to a
    /// directory it is already inside (a loop: `a -> .`, `sub/up -> ..`) are errors naming the
    /// link; a dangling link is left out (it holds nothing). So a listing never reaches files the tree's owner did not put
    /// in it, and always ends.
    public static func listFiles(under root: String) throws(FileError) -> [String] {
        guard isDirectory(root) else { throw FileError(path: root, operation: "list", reason: "not a readable directory") }
        let realRoot = realPath(root) ?? root
        func inside(_ real: String) -> Bool { real == realRoot || real.hasPrefix(realRoot == "/" ? "/" : realRoot + "/") }
        var out: [String] = []
        // Each directory to list, with the real paths of the directories on the way to it.
        var todo: [(rel: String, chain: [String])] = [("", [realRoot])]
        while let (rel, chain) = todo.popLast() {
            let dir = rel.isEmpty ? root : root + "/" + rel
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
                throw FileError(path: dir, operation: "list", reason: "\(error)")
            }
            for name in names {
                let child = rel.isEmpty ? name : rel + "/" + name
                let full = root + "/" + child
                var link = Glibc.stat()
                guard lstat(full, &link) == 0 else { continue }  // removed meanwhile
                if (link.st_mode & S_IFMT) == S_IFLNK {
                    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?"
                    guard let real = realPath(full), let st = status(real) else { continue }  // dangling: nothing to store
                    guard inside(real) else {
                        throw FileError(path: full, operation: "read", reason: "it is a symbolic link to \(real), outside \(root); haps-pipe follows links only within the directory it is given. Give it a copy that holds the files themselves (cp -rL \(root) NEWDIR, then name NEWDIR; for a Hugging Face model, huggingface-cli download --local-dir writes real files)")
                    }
                    if st.isDirectory {
                        if chain.contains(real) {
                            throw FileError(path: full, operation: "read", reason: "it is a symbolic link to \(target), a directory it is inside (a loop)")
                        }
                        todo.append((child, chain + [real]))
                    } else {
                        out.append(child)
                    }
                } else if (link.st_mode & S_IFMT) == S_IFDIR {
                    todo.append((child, chain + [chain.last! + "/" + name]))
                } else {
                    out.append(child)
                }
            }
        }
        return out.sorted()
    }

    /// Writes text to standard error (unbuffered, whole).
    public static func writeStderr(_ text: String) {
        try? writeAll(2, Array(text.utf8), path: "standard error")
    }
}

/// An advisory whole-file lock (flock) held by this process; the kernel drops it when the
/// process dies, so a `kill -9` never leaves a stale lock behind.
public final class FileLock: @unchecked Sendable {
    public let path: String
    private var fd: Int32

    public enum Mode { case shared, exclusive }

    /// Blocks until the lock is granted.
    public init(path: String, mode: Mode = .exclusive) throws(FileError) {
        self.path = path
        try FileIO.makeDirectory(Path.directory(path))
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(path: path, operation: "open lock", errno: errno) }
        while flock(fd, mode == .exclusive ? LOCK_EX : LOCK_SH) != 0 {
            if errno == EINTR { continue }
            let code = errno
            close(fd)
            throw FileError(path: path, operation: "lock", errno: code)
        }
    }

    /// Returns nil at once when another process holds a conflicting lock.
    public static func tryLock(path: String, mode: Mode = .exclusive) throws(FileError) -> FileLock? {
        try FileIO.makeDirectory(Path.directory(path))
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(path: path, operation: "open lock", errno: errno) }
        if flock(fd, (mode == .exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 { close(fd); return nil }
        return FileLock(path: path, fd: fd)
    }

    private init(path: String, fd: Int32) { self.path = path; self.fd = fd }

    public func unlock() {
        if fd >= 0 { flock(fd, LOCK_UN); close(fd); fd = -1 }
    }

    deinit { unlock() }
}
