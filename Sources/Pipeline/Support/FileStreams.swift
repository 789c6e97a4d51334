#if canImport(Glibc)
import Glibc
#endif

/// Files hashed and copied without holding them in memory, for files too large to (model
/// weights): memory stays at a window of `8 * FileStream.chunk` bytes whatever the file's size.
public enum FileStream {
    /// Bytes read and written per call: large enough that the system calls cost nothing
    /// beside the disk, small enough to stay far below any memory limit.
    public static let chunk = 8 << 20

    /// What a streamed file held: its SHA-256 and its length.
    public struct Summary: Sendable, Equatable {
        public var digest: Digest
        public var size: Int64
    }

    /// The SHA-256 of a file's bytes.
    public static func hash(_ path: String) throws(FileError) -> Summary {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileError(path: path, operation: "read", errno: errno) }
        defer { close(fd) }
        return try hash(fd, path: path)
    }

    /// The SHA-256 of an open file's bytes, hashed where they lie in the page cache (mapped a
    /// window at a time, so that neither a copy into a buffer nor the whole file is in memory);
    /// read a buffer at a time where the file cannot be mapped.
    static func hash(_ fd: Int32, path: String) throws(FileError) -> Summary {
        var st = Glibc.stat()
        if fstat(fd, &st) != 0 { throw FileError(path: path, operation: "stat", errno: errno) }
        let size = Int(st.st_size)
        var hasher = DigestBuilder()
        var offset = 0
        let window = 8 * chunk
        while offset < size {
            let length = min(window, size - offset)
            guard let base = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(offset)),
                  base != UnsafeMutableRawPointer(bitPattern: -1) else {
                return try hashByReading(fd, from: offset, into: hasher, path: path)
            }
            _ = madvise(base, length, MADV_WILLNEED)  // read ahead the whole window
            hasher.update(UnsafeRawBufferPointer(start: base, count: length))
            munmap(base, length)
            offset += length
        }
        return Summary(digest: hasher.finalize(), size: Int64(size))
    }

    private static func hashByReading(_ fd: Int32, from start: Int, into hasher: DigestBuilder, path: String) throws(FileError) -> Summary {
        var hasher = hasher
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        var size = Int64(start)
        while true {
            let n = pread(fd, buffer.baseAddress, chunk, off_t(size))
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, operation: "read", errno: errno) }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            size += Int64(n)
        }
        return Summary(digest: hasher.finalize(), size: size)
    }

    /// Copies `source` into the new, empty file `fd` (opened for reading and writing), then
    /// hashes the copy: the digest is of the bytes stored, even if `source` changes meanwhile.
    /// The copy shares `source`'s blocks where the file system can (a reflink), else is the
    /// kernel's (`sendfile`: no pass through this process's memory), else a buffer at a time.
    public static func copy(from source: String, to fd: Int32, destination: String) throws(FileError) -> Summary {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        if input < 0 { throw FileError(path: source, operation: "read", errno: errno) }
        defer { close(input) }
        if ioctl(fd, ficlone, input) != 0 {
            var copied = 0
            while true {
                let n = sendfile(fd, input, nil, 1 << 30)
                if n > 0 { copied += n; continue }
                if n == 0 { break }
                if errno == EINTR { continue }
                // Not between these files (an old kernel, a file system without it): by hand.
                guard copied == 0, [EINVAL, ENOSYS, EOPNOTSUPP].contains(errno) else {
                    throw FileError(path: destination, operation: "copy \(source) to", errno: errno)
                }
                try copyByReading(input, to: fd, source: source, destination: destination)
                break
            }
        }
        return try hash(fd, path: destination)
    }

    private static func copyByReading(_ input: Int32, to fd: Int32, source: String, destination: String) throws(FileError) {
        _ = posix_fadvise(input, 0, 0, POSIX_FADV_SEQUENTIAL)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(input, buffer.baseAddress, chunk)
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: source, operation: "read", errno: errno) }
            if n == 0 { return }
            try writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: destination)
        }
    }

    /// Writes all of `bytes` to `fd` (retrying short writes and interruptions).
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(FileError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { if errno == EINTR { continue }; throw FileError(path: path, operation: "write", errno: errno) }
            done += n
        }
    }

    /// Makes `destination` (a new file, `mode`) share `source`'s blocks where the file system
    /// can (a reflink: btrfs, XFS, and others with `FICLONE`); false where it cannot, and then
    /// nothing is left at `destination`.
    public static func clone(_ source: String, to destination: String, mode: mode_t) -> Bool {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        if input < 0 { return false }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if output < 0 { return false }
        defer { close(output) }
        if ioctl(output, ficlone, input) == 0 { return true }
        unlink(destination)
        return false
    }

    /// The `FICLONE` ioctl, `_IOW(0x94, 9, int)`: the file takes another's blocks.
    static let ficlone: UInt = 0x4004_9409
}
