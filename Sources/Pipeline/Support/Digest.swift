#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

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
        var h = SHA256()
        bytes.withUnsafeBytes { h.update($0) }
        return Digest(bytes: h.finalize())
    }

    public static func of(string: String) -> Digest {
        var s = string
        return s.withUTF8 { buffer in
            var h = SHA256()
            h.update(UnsafeRawBufferPointer(buffer))
            return Digest(bytes: h.finalize())
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
public struct DigestBuilder {
    private var hasher = SHA256()
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bytes) }
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { hasher.update($0) } }
    public mutating func finalize() -> Digest { Digest(bytes: hasher.finalize()) }
}
