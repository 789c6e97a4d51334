#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto

/// A SHA-256 content digest, written as 64 lowercase hex digits.
///
///     Digest.of(Array("hello".utf8)).hex   // 2cf24dba5fb0a30e...
///
/// Keys, objects and artifacts in the store are all named by digests.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public let hex: String

    public init?(hex: String) {
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return nil }
        self.hex = hex
    }

    init(bytes: [UInt8]) {
        let table = Array("0123456789abcdef".utf8)
        var out = [UInt8](); out.reserveCapacity(64)
        for b in bytes { out.append(table[Int(b >> 4)]); out.append(table[Int(b & 15)]) }
        hex = String(decoding: out, as: UTF8.self)
    }

    public static func of(_ bytes: [UInt8]) -> Digest {
        var h = DigestBuilder()
        h.update(bytes)
        return h.finalize()
    }

    public static func of(string: String) -> Digest {
        var s = string
        return s.withUTF8 { buffer in
            var h = DigestBuilder()
            h.update(UnsafeRawBufferPointer(buffer))
            return h.finalize()
        }
    }

    /// The first 12 hex digits, for messages and tables.
    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }
    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let d = Digest(hex: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a SHA-256 hex digest: \(s)"))
        }
        self = d
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer(); try c.encode(hex)
    }
}

/// Incremental SHA-256 over a stream of chunks (large files are hashed without loading them whole).
///
/// The hashing is swift-crypto's (BoringSSL's assembly, with the SHA extensions where the CPU
/// has them): about 1.4 GB/s on the 2-core machine against 100 MB/s for the hand-written Swift
/// it replaced, so that a large file is hashed at the speed of the disk. The digests are the
/// same: SHA-256 over the same bytes.
public struct DigestBuilder {
    private var hasher = Crypto.SHA256()
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
    public mutating func finalize() -> Digest { Digest(bytes: Array(hasher.finalize())) }
}
