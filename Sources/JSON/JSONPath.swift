/// A location inside a JSON document, printed the way people write it: `$.stages.score.params`.
public struct JSONPath: Hashable, Sendable, CustomStringConvertible, Comparable {
    public enum Component: Hashable, Sendable {
        case key(String)
        case index(Int)
    }
    public var components: [Component]

    public init(_ components: [Component] = []) { self.components = components }
    public static let root = JSONPath()

    public func appending(_ key: String) -> JSONPath { JSONPath(components + [.key(key)]) }
    public func appending(index: Int) -> JSONPath { JSONPath(components + [.index(index)]) }
    public var parent: JSONPath? { components.isEmpty ? nil : JSONPath(Array(components.dropLast())) }
    /// The last component when it is a key (a parameter's or field's name).
    public var lastKey: String? { if case .key(let k) = components.last { return k } else { return nil } }

    public var description: String {
        var s = "$"
        for c in components {
            switch c {
            case .index(let i): s += "[\(i)]"
            case .key(let k):
                let plain = !k.isEmpty && k.unicodeScalars.allSatisfy {
                    ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "_" || $0 == "-"
                }
                if plain { s += "." + k } else { var q = ""; JSONValue.writeString(k, to: &q); s += "[\(q)]" }
            }
        }
        return s
    }

    public static func < (a: JSONPath, b: JSONPath) -> Bool { a.description < b.description }
}

/// A line and column in a source text, both counted from 1 (columns in characters).
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) { self.line = line; self.column = column }
    public var description: String { "\(line):\(column)" }
}
