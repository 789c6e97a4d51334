/// The name of a kind of artifact ("questions", "samples", "files", ...).
///
/// Every stage output has a kind and every input port declares the kind it accepts, so that
/// a spec that wires a score table into a port expecting samples fails validation.
public struct ArtifactKind: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral, Codable {
    public let name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral value: String) { self.name = value }
    public var description: String { name }
    public static func < (a: ArtifactKind, b: ArtifactKind) -> Bool { a.name < b.name }

    /// Accepted by a port of kind `any`; produced by the `command` stage by default.
    public static let files: ArtifactKind = "files"
    /// A port of this kind accepts every kind.
    public static let any: ArtifactKind = "any"

    /// Whether an output of kind `produced` may feed a port declared with this kind.
    public func accepts(_ produced: ArtifactKind) -> Bool { self == .any || self == produced }

    public init(from decoder: any Decoder) throws { name = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(name) }
}

/// The content of an artifact: its kind and its files (relative path → object digest).
///
/// Stored as a canonical-JSON object; the digest of those bytes is the artifact's digest,
/// so two artifacts with the same kind and the same file contents have the same digest.
public struct ArtifactManifest: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var digest: Digest
        public var size: Int64
        public var executable: Bool
    }
    public var kind: ArtifactKind
    public var files: [String: Entry]
    /// Set for inputs that are the user's own files, hashed where they lie and not copied.
    public var externalRoot: String?

    public init(kind: ArtifactKind, files: [String: Entry], externalRoot: String? = nil) {
        self.kind = kind; self.files = files; self.externalRoot = externalRoot
    }

    public var json: JSONValue {
        var members: [String: JSONValue] = [:]
        for (path, e) in files {
            var f: [String: JSONValue] = ["digest": .string(e.digest.hex), "size": .number(Double(e.size))]
            if e.executable { f["executable"] = true }
            members[path] = .object(f)
        }
        // The external root is not part of the content (moving a dataset does not change it).
        return .object(["kind": .string(kind.name), "files": .object(members), "format": 1])
    }

    public var bytes: [UInt8] { Array(json.canonical.utf8) }
    public var digest: Digest { Digest.of(bytes) }
    public var totalSize: Int64 { files.values.reduce(0) { $0 + $1.size } }

    public init(json: JSONValue) throws(StoreError) {
        guard let kind = json["kind"]?.stringValue, let files = json["files"]?.objectMembers else {
            throw StoreError(.badMetadata, "artifact manifest lacks 'kind' or 'files'")
        }
        var entries: [String: Entry] = [:]
        for (path, f) in files {
            guard let hex = f["digest"]?.stringValue, let d = Digest(hex: hex), let size = f["size"]?.doubleValue else {
                throw StoreError(.badMetadata, "artifact manifest entry '\(path)' is malformed")
            }
            entries[path] = Entry(digest: d, size: Int64(size), executable: f["executable"]?.boolValue ?? false)
        }
        self.init(kind: ArtifactKind(kind), files: entries)
    }
}

/// A resolved artifact handed to a running stage: where its files are on disk.
///
/// `path` is the single file when the artifact holds exactly one file, else the directory.
public struct InputArtifact: Sendable {
    public var digest: Digest
    public var manifest: ArtifactManifest
    /// The directory that holds the artifact's files (an unpacked tree, read-only for stages).
    public var directory: String

    public var kind: ArtifactKind { manifest.kind }
    public var fileNames: [String] { manifest.files.keys.sorted() }

    public var path: String {
        if manifest.files.count == 1, let only = manifest.files.keys.first { return directory + "/" + only }
        return directory
    }

    /// The path of one file of the artifact; an artifact of one file under another name (a
    /// user's `dataset/test.jsonl` where `questions.jsonl` is read) is that file.
    public func path(of file: String) -> String {
        if manifest.files[file] == nil, manifest.files.count == 1, let only = manifest.files.keys.first { return directory + "/" + only }
        return directory + "/" + file
    }
}
