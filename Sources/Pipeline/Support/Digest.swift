import Crypto
import Foundation

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

    private init(unchecked hex: String) { self.hex = hex }

    public static func of<D: DataProtocol>(_ bytes: D) -> Digest {
        Digest(hashed: SHA256.hash(data: bytes))
    }

    public static func of(string: String) -> Digest { of(Array(string.utf8)) }

    init(hashed: SHA256.Digest) {
        let table = Array("0123456789abcdef".utf8)
        var out = [UInt8](); out.reserveCapacity(64)
        for b in hashed { out.append(table[Int(b >> 4)]); out.append(table[Int(b & 15)]) }
        self.init(unchecked: String(decoding: out, as: UTF8.self))
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
    public mutating func update<D: DataProtocol>(_ bytes: D) { hasher.update(data: bytes) }
    public func finalize() -> Digest { Digest(hashed: hasher.finalize()) }
}
