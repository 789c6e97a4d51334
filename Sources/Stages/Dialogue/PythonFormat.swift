/// Python's `str.format(**kwargs)` for templates with named fields: `{name}` is replaced,
/// `{{` and `}}` are braces, every named field must be supplied (Python raises KeyError), and
/// extra arguments are ignored. Format specs, conversions and indexing are refused with an
/// error naming the field, rather than guessed.
public enum PythonFormat {
    public struct Failure: Error, Equatable, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    /// The field names a template uses, in order (for validating a prompt set up front).
    public static func fields(_ template: String) throws(Failure) -> [String] {
        var out: [String] = []
        _ = try render(template) { name in out.append(name); return "" }
        return out
    }

    public static func format(_ template: String, _ values: [String: String]) throws(Failure) -> String {
        try render(template) { name throws(Failure) in
            guard let v = values[name] else { throw Failure(message: "the template uses {\(name)}, which is not supplied (KeyError in Python)") }
            return v
        }
    }

    /// Scans the template's UTF-8 (braces are ASCII, so a byte scan is exact) and appends
    /// whole runs of literal text, not character by character: prompts are rendered per call.
    static func render(_ template: String, _ value: (String) throws(Failure) -> String) throws(Failure) -> String {
        let u = template.utf8
        var out = ""
        out.reserveCapacity(u.count + 256)
        var literalStart = u.startIndex
        var i = u.startIndex
        let open = UInt8(ascii: "{"), close = UInt8(ascii: "}")
        func flushLiteral(to end: String.Index) { if literalStart < end { out += template[literalStart..<end] } }
        while i < u.endIndex {
            let c = u[i]
            let next = u.index(after: i)
            if c == open {
                flushLiteral(to: i)
                if next < u.endIndex && u[next] == open { out += "{"; i = u.index(after: next); literalStart = i; continue }
                guard let closing = u[next...].firstIndex(of: close) else { throw Failure(message: "single '{' encountered in format string") }
                let name = String(template[next..<closing])
                guard !name.isEmpty, name.unicodeScalars.allSatisfy({ PythonText.isWordCharacter($0) }),
                      !(name.unicodeScalars.first!.properties.numericType != nil) else {
                    throw Failure(message: "field {\(name)} is not a plain name (format specs, conversions, positions and indexing are not supported)")
                }
                out += try value(name)
                i = u.index(after: closing)
                literalStart = i
            } else if c == close {
                flushLiteral(to: i)
                guard next < u.endIndex && u[next] == close else { throw Failure(message: "single '}' encountered in format string") }
                out += "}"
                i = u.index(after: next)
                literalStart = i
            } else {
                i = next
            }
        }
        flushLiteral(to: u.endIndex)
        return out
    }
}
