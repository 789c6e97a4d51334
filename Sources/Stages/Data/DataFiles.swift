#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Pipeline

/// A bad line in an input file, with where it is.
public struct DataError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var message: String
    public init(file: String, line: Int?, _ message: String) { self.file = file; self.line = line; self.message = message }
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// Reads JSON Lines: one JSON value per non-empty line (line ends "\n", "\r\n" or "\r", as
/// Python's text mode reads them), errors with `file:line`.
public enum JSONLines {
    public static func read(_ path: String) throws -> [(line: Int, value: JSONValue)] {
        try parse(try text(path), file: path)
    }

    /// A data file's text (UTF-8, checked), with read errors as `DataError`s.
    public static func text(_ path: String) throws -> String {
        do { return try FileIO.readString(path) } catch {
            throw DataError(file: path, line: error.line, error.line == nil ? "cannot read: \(error.reason)" : error.reason)
        }
    }

    public static func parse(_ text: String, file: String) throws -> [(line: Int, value: JSONValue)] {
        var out: [(Int, JSONValue)] = []
        var lineNumber = 0
        for line in FileIO.lines(text) {
            lineNumber += 1
            if line.allSatisfy({ $0.isWhitespace }) { continue }
            do { out.append((lineNumber, try JSONParser.parse(String(line)))) } catch {
                throw DataError(file: file, line: lineNumber, "invalid JSON at column \(error.location.column): \(error.message)")
            }
        }
        return out.map { (line: $0.0, value: $0.1) }
    }
}

/// The reference's candidate models and pairs (its scripts' presets), declared once: the key
/// its scripts name a model by, the Hugging Face id, and the port its vLLM script serves it on.
public enum ReferenceModels {
    public struct Model: Sendable {
        public let id: String
        /// The port of the reference's `<model>_vllm_<port>.py`, where it has one.
        public let port: Int?
        /// The name rows carry ("Llama-3.1-8B-Instruct"): the id's last part.
        public var name: String { String(id.split(separator: "/").last ?? Substring(id)) }
    }

    public static let all: [String: Model] = [
        "llama": Model(id: "meta-llama/Llama-3.1-8B-Instruct", port: 2024),
        "qwen": Model(id: "Qwen/Qwen2.5-7B-Instruct", port: 2025),
        "mistral": Model(id: "mistralai/Mistral-7B-Instruct-v0.3", port: 2026),
        "qwen3b": Model(id: "Qwen/Qwen2.5-3B-Instruct", port: nil),
        "qwen14b": Model(id: "Qwen/Qwen2.5-14B-Instruct", port: nil),
    ]

    /// Each pair's models by key, candidate 0 first.
    public static let pairs: [String: [String]] = [
        "llama_qwen": ["llama", "qwen"], "mistral_qwen": ["mistral", "qwen"], "llama_mistral": ["llama", "mistral"],
        "llama8b_qwen3b": ["llama", "qwen3b"], "llama8b_qwen14b": ["llama", "qwen14b"],
    ]
}

/// Maps model names to candidate ids: the reference's presets, or a user's mapping.
public struct CandidateNames: Sendable, Equatable {
    public var ids: [String: Int]

    /// The reference's pairs (candidate 0, candidate 1), by their models' names.
    public static let presets: [String: [String]] = ReferenceModels.pairs.mapValues { $0.map { ReferenceModels.all[$0]!.name } }

    public init(ids: [String: Int]) { self.ids = ids }

    public init(preset: String) throws {
        guard let names = CandidateNames.presets[preset] else {
            throw DataError(file: "--pair", line: nil, "unknown pair '\(preset)'" + NearestName.hint(preset, among: CandidateNames.presets.keys)
                            + "; known: \(CandidateNames.presets.keys.sorted().joined(separator: ", "))")
        }
        ids = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
    }

    /// An id from an int, a digit string, or a model name (also as "org/name").
    public func resolve(_ v: JSONValue?) -> Int? {
        switch v {
        case .number?: return v?.intValue
        case .string(let s)?:
            if !s.isEmpty, s.allSatisfy(\.isASCII), let n = Int(s), n >= 0 { return n }
            if let id = ids[s] { return id }
            if let slash = s.lastIndex(of: "/") { return ids[String(s[s.index(after: slash)...])] }
            return nil
        default: return nil
        }
    }
}
