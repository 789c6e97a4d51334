/// Why a spec could not be used: every problem found, each with its JSON path and, where the
/// parser knows it, its line and column.
public struct SpecError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var problems: [SpecProblem]
    public var locations: [JSONPath: SourceLocation]
    /// Set when the file is not JSON at all.
    public var syntax: JSONParser.SyntaxError?

    public init(file: String, problems: [SpecProblem], locations: [JSONPath: SourceLocation] = [:], syntax: JSONParser.SyntaxError? = nil) {
        self.file = file; self.problems = problems; self.locations = locations; self.syntax = syntax
    }

    /// One line per problem: `file:line:col: $.path: message` (line:col when known).
    public var lines: [String] {
        if let syntax { return ["\(file):\(syntax.location): invalid JSON: \(syntax.message)"] }
        return problems.map { p in
            if p.path == SpecProblem.commandLine { return "--set \(p.message)" }
            var path: JSONPath? = p.path
            while let q = path, locations[q] == nil { path = q.parent }
            let loc = path.flatMap { locations[$0] }.map { ":\($0)" } ?? ""
            return "\(file)\(loc): \(p.path): \(p.message)"
        }
    }

    public var description: String {
        let n = syntax == nil ? problems.count : 1
        return "\(file) is not a valid pipeline spec (\(n) problem\(n == 1 ? "" : "s")):\n" + lines.map { "  " + $0 }.joined(separator: "\n")
    }
}
