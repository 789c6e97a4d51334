#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// One action-cache entry: a stage key, the artifact it produced, and how.
public struct ActionEntry: Sendable {
    public var key: Digest
    public var output: Digest
    public var kind: ArtifactKind
    /// The key's ingredients (type, version, params, resources, input digests) for `explain`.
    public var payload: JSONValue
    public var createdAt: Date
    public var seconds: Double
    public var objectStats: [Digest: FileIO.Stat]

    public init(key: Digest, output: Digest, kind: ArtifactKind, payload: JSONValue, createdAt: Date, seconds: Double, objectStats: [Digest: FileIO.Stat]) {
        self.key = key; self.output = output; self.kind = kind; self.payload = payload
        self.createdAt = createdAt; self.seconds = seconds; self.objectStats = objectStats
    }

    var json: JSONValue {
        var stats: [String: JSONValue] = [:]
        for (d, s) in objectStats {
            // Seconds and nanoseconds apart: nanoseconds since 1970 do not fit a double exactly.
            stats[d.hex] = [.number(Double(s.size)), .number(Double(s.mtimeNanos / 1_000_000_000)),
                            .number(Double(s.mtimeNanos % 1_000_000_000)), .number(Double(s.inode))]
        }
        return .object([
            "key": .string(key.hex), "output": .string(output.hex), "kind": .string(kind.name),
            "payload": payload, "created": .number(createdAt.timeIntervalSince1970),
            "seconds": .number(seconds), "objects": .object(stats),
        ])
    }

    init?(json: JSONValue) {
        guard let k = json["key"]?.stringValue.flatMap(Digest.init(hex:)),
              let o = json["output"]?.stringValue.flatMap(Digest.init(hex:)),
              let kind = json["kind"]?.stringValue, let payload = json["payload"] else { return nil }
        var stats: [Digest: FileIO.Stat] = [:]
        for (hex, v) in json["objects"]?.objectMembers ?? [] {
            guard let d = Digest(hex: hex), let a = v.arrayValue, a.count == 4,
                  let size = a[0].intValue, let sec = a[1].intValue, let nsec = a[2].intValue, let ino = a[3].doubleValue else { return nil }
            stats[d] = FileIO.Stat(size: Int64(size), mtimeNanos: Int64(sec) * 1_000_000_000 + Int64(nsec), inode: UInt64(ino),
                                   isDirectory: false, isExecutable: false)
        }
        self.init(key: k, output: o, kind: ArtifactKind(kind), payload: payload,
                  createdAt: Date(timeIntervalSince1970: json["created"]?.doubleValue ?? 0),
                  seconds: json["seconds"]?.doubleValue ?? 0, objectStats: stats)
    }
}

/// The latest result of a stage of a named pipeline: what `show`, `explain` and `gc` start from.
public struct StageRef: Sendable {
    public var key: Digest
    public var output: Digest
    public var kind: ArtifactKind
    public var payload: JSONValue
    public var updatedAt: Date
    /// Why the stage last ran ("cached" when it was a hit), as `explain` prints it.
    public var reason: [String]
    public var ranAt: Date?
    public var seconds: Double

    public init(key: Digest, output: Digest, kind: ArtifactKind, payload: JSONValue, updatedAt: Date, reason: [String], ranAt: Date?, seconds: Double) {
        self.key = key; self.output = output; self.kind = kind; self.payload = payload
        self.updatedAt = updatedAt; self.reason = reason; self.ranAt = ranAt; self.seconds = seconds
    }

    var json: JSONValue {
        var o: [String: JSONValue] = [
            "key": .string(key.hex), "output": .string(output.hex), "kind": .string(kind.name),
            "payload": payload, "updated": .number(updatedAt.timeIntervalSince1970),
            "reason": .array(reason.map(JSONValue.string)), "seconds": .number(seconds),
        ]
        if let ranAt { o["ran"] = .number(ranAt.timeIntervalSince1970) }
        return .object(o)
    }

    init?(json: JSONValue) {
        guard let k = json["key"]?.stringValue.flatMap(Digest.init(hex:)),
              let o = json["output"]?.stringValue.flatMap(Digest.init(hex:)),
              let kind = json["kind"]?.stringValue, let payload = json["payload"] else { return nil }
        self.init(key: k, output: o, kind: ArtifactKind(kind), payload: payload,
                  updatedAt: Date(timeIntervalSince1970: json["updated"]?.doubleValue ?? 0),
                  reason: json["reason"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                  ranAt: json["ran"]?.doubleValue.map { Date(timeIntervalSince1970: $0) },
                  seconds: json["seconds"]?.doubleValue ?? 0)
    }
}
