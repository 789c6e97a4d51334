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

    static func render(_ template: String, _ value: (String) throws(Failure) -> String) throws(Failure) -> String {
        let s = Array(template.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == "{" {
                if i + 1 < s.count && s[i + 1] == "{" { out.append("{"); i += 2; continue }
                guard let close = s[(i + 1)...].firstIndex(of: "}") else { throw Failure(message: "single '{' encountered in format string") }
                let name = String(String.UnicodeScalarView(s[(i + 1)..<close]))
                guard !name.isEmpty, name.unicodeScalars.allSatisfy({ PythonText.isWordCharacter($0) }),
                      !(name.unicodeScalars.first!.properties.numericType != nil) else {
                    throw Failure(message: "field {\(name)} is not a plain name (format specs, conversions, positions and indexing are not supported)")
                }
                out.append(contentsOf: try value(name).unicodeScalars)
                i = close + 1
            } else if c == "}" {
                guard i + 1 < s.count && s[i + 1] == "}" else { throw Failure(message: "single '}' encountered in format string") }
                out.append("}"); i += 2
            } else {
                out.append(c); i += 1
            }
        }
        return String(out)
    }
}
