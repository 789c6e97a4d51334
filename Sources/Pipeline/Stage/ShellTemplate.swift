/// A `command` stage's shell command with its placeholders filled in so that a value is always
/// data and never code, in every context of `/bin/sh`: no value is ever written into the
/// script. Each placeholder becomes a reference to an environment variable (`HAPS_V_1`, ...)
/// that holds the value, written for where it stands:
///
/// | where the placeholder stands                  | written as          |
/// | --------------------------------------------- | ------------------- |
/// | plain command text, `$( )` and `` ` ` ``      | `"${HAPS_V_1}"`     |
/// | inside "…", an unquoted here-document, `$(( ))`, a comment | `${HAPS_V_1}` |
/// | inside '…'                                    | `'"${HAPS_V_1}"'`   |
/// | inside a quoted here-document (`<<'EOF'`)     | refused: it cannot be expanded there |
///
/// The shell expands a variable's value once and never parses it as a command, so a value
/// such as `x; touch FILE`, `$(…)`, a backquote or a newline is printed, not run, even where
/// the scanner misjudges the context (the worst a misjudged context gives is the wrong text,
/// never a command). Only the program the script calls can still run its own argument as
/// code (`eval`, `sh -c`, `python -c`).
public struct ShellCommand: Sendable, Equatable {
    /// The script for `/bin/sh -c`.
    public var script: String
    /// The variables the script's references name, with their values.
    public var environment: [String: String]
    /// The script with the values written in (for messages only; never run).
    public var display: String
}

extension Template {
    /// Fills `s`'s placeholders for `/bin/sh` (see `ShellCommand`). Throws for a placeholder
    /// with no value, or one inside a quoted here-document.
    public static func shellCommand(_ s: String, _ values: [String: String]) throws -> ShellCommand {
        var scanner = ShellScanner()
        var script = "", display = ""
        var variables: [String: String] = [:]   // placeholder → variable name
        var environment: [String: String] = [:]
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            let n = s.index(after: i)
            if (c == "{" || c == "}") && n < s.endIndex && s[n] == c {
                script.append(c); display.append(c); scanner.read(c); i = s.index(after: n); continue
            }
            if c == "{", let close = s[n...].firstIndex(of: "}") {
                let name = String(s[n..<close])
                guard let v = values[name] else { throw CommandFailure(message: "placeholder {\(name)} has no value") }
                let variable = variables[name] ?? "HAPS_V_\(variables.count + 1)"
                variables[name] = variable
                environment[variable] = v
                if scanner.isEscaped {
                    throw CommandFailure(message: "placeholder {\(name)} follows a backslash, which would escape its value's first character; remove the backslash")
                }
                guard let reference = scanner.reference(to: variable) else {
                    throw CommandFailure(message: "placeholder {\(name)} stands inside a quoted here-document (<<'WORD'), where the shell expands nothing; read the value there from the environment instead (\(environmentHint(name)))")
                }
                script += reference
                display += v
                scanner.readPlaceholder()
                i = s.index(after: close)
                continue
            }
            script.append(c); display.append(c); scanner.read(c); i = n
        }
        return ShellCommand(script: script, environment: environment, display: display)
    }

    /// Where a program finds a placeholder's value in its environment (`CommandStage`'s variables).
    static func environmentHint(_ name: String) -> String {
        let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
        let upper = CommandStage.envName
        switch (parts.first ?? "", parts.count) {
        case ("inputs", 2): return "$HAPS_INPUT_\(upper(parts[1])), e.g. os.environ[\"HAPS_INPUT_\(upper(parts[1]))\"] in Python"
        case ("params", 2): return "$HAPS_PARAM_\(upper(parts[1])), e.g. os.environ[\"HAPS_PARAM_\(upper(parts[1]))\"] in Python"
        case ("outputs", 2): return "$HAPS_OUT/\(parts[1])"
        case ("out", 1): return "$HAPS_OUT"
        case ("work", 1): return "$HAPS_WORK"
        case ("seed", 1): return "$HAPS_SEED"
        case ("item_index", 1): return "$HAPS_ITEM_INDEX"
        case ("item_file", 1): return "$HAPS_ITEM_FILE"
        default: return "the HAPS_* variables"
        }
    }
}

/// Follows a `/bin/sh` script character by character to know what quoting context a position
/// is in: a stack of contexts (command text, quotes, `$( )`, backquotes, `$(( ))`, comments,
/// here-documents). It models the POSIX shell grammar's quoting, not all of it: see
/// `ShellCommand` for why a misjudgement cannot run a value.
struct ShellScanner {
    enum Frame: Equatable {
        /// Command text: the top level, or inside `$( )` (closed by `)` at depth 0) or backquotes.
        case command(closer: Character?, depth: Int)
        case single
        case double
        case arithmetic(depth: Int)
        case comment
        case heredoc(delimiter: String, quoted: Bool, stripTabs: Bool, line: String)
    }
    private(set) var stack: [Frame] = [.command(closer: nil, depth: 0)]
    /// `\` seen: the next character is literal.
    private var escaped = false
    var isEscaped: Bool { escaped }
    /// The previous character, to see `$(`, `<<`, and where a word starts (for `#`).
    private var previous: Character = "\n"
    private var beforePrevious: Character = "\n"
    /// Here-documents whose bodies start at the next newline: delimiter, quoted, `<<-`.
    private var pendingHeredocs: [(String, Bool, Bool)] = []
    /// Reading a here-document's delimiter word after `<<`.
    private var delimiter: (word: String, quoted: Bool, stripTabs: Bool, quote: Character?)?

    /// How a reference to `variable` is written here; nil inside a quoted here-document.
    func reference(to variable: String) -> String? {
        switch stack.last! {
        case .command: return "\"${\(variable)}\""
        case .single: return "'\"${\(variable)}\"'"
        case .double, .arithmetic, .comment: return "${\(variable)}"
        case .heredoc(_, let quoted, _, _): return quoted ? nil : "${\(variable)}"
        }
    }

    /// A placeholder counts as word text (it is never a delimiter, a quote or a comment start).
    mutating func readPlaceholder() {
        if case .heredoc(let d, let q, let t, let line) = stack.last! { stack[stack.count - 1] = .heredoc(delimiter: d, quoted: q, stripTabs: t, line: line + "\u{0}") }
        if delimiter != nil { delimiter!.word += "\u{0}" }
        shift("a")
    }

    mutating func read(_ c: Character) {
        defer { shift(c) }
        if escaped { escaped = false; if delimiter != nil { delimiter!.word.append(c); delimiter!.quoted = true }; return }
        if readDelimiter(c) { return }
        switch stack.last! {
        case .command(let closer, let depth):
            switch c {
            case "\\": escaped = true
            case "'": stack.append(.single)
            case "\"": stack.append(.double)
            case "`" where closer == "`": stack.removeLast()
            case "`": stack.append(.command(closer: "`", depth: 0))
            case "(" where previous == "$": stack.append(.command(closer: ")", depth: 0))
            case "(" where previous == "(" && beforePrevious == "$":
                stack.removeLast(); stack.append(.arithmetic(depth: 0))
            case "(": if closer == ")" { stack[stack.count - 1] = .command(closer: closer, depth: depth + 1) }
            case ")" where closer == ")": if depth == 0 { stack.removeLast() } else { stack[stack.count - 1] = .command(closer: closer, depth: depth - 1) }
            case "#" where " \t\n;&|()<>".contains(previous): stack.append(.comment)
            case "<" where previous == "<" && beforePrevious != "<": delimiter = ("", false, false, nil)
            case "\n": startHeredocs()
            default: break
            }
        case .single:
            if c == "'" { stack.removeLast() }
        case .double:
            switch c {
            case "\\": escaped = true
            case "\"": stack.removeLast()
            case "`": stack.append(.command(closer: "`", depth: 0))
            case "(" where previous == "$": stack.append(.command(closer: ")", depth: 0))
            default: break
            }
        case .arithmetic(let depth):  // depth -1: the first `)` of the closing `))` was read
            switch c {
            case "(": stack[stack.count - 1] = .arithmetic(depth: max(0, depth) + 1)
            case ")" where depth > 0: stack[stack.count - 1] = .arithmetic(depth: depth - 1)
            case ")" where depth == 0: stack[stack.count - 1] = .arithmetic(depth: -1)
            case ")": stack.removeLast()
            default: if depth < 0 { stack[stack.count - 1] = .arithmetic(depth: 0) }
            }
        case .comment:
            if c == "\n" { stack.removeLast(); startHeredocs() }
        case .heredoc(let d, let quoted, let stripTabs, let line):
            if c == "\n" {
                let body = stripTabs ? String(line.drop(while: { $0 == "\t" })) : line
                if body == d { stack.removeLast() } else { stack[stack.count - 1] = .heredoc(delimiter: d, quoted: quoted, stripTabs: stripTabs, line: "") }
                return
            }
            stack[stack.count - 1] = .heredoc(delimiter: d, quoted: quoted, stripTabs: stripTabs, line: line + String(c))
            guard !quoted else { return }
            switch c {
            case "\\": escaped = true
            case "`": stack.append(.command(closer: "`", depth: 0))
            case "(" where previous == "$": stack.append(.command(closer: ")", depth: 0))
            default: break
            }
        }
    }

    /// After `<<`: an optional `-`, blanks, then the delimiter word (quoted when any part of it
    /// is). Returns whether `c` was part of it.
    private mutating func readDelimiter(_ c: Character) -> Bool {
        guard var d = delimiter else { return false }
        if d.word.isEmpty && !d.stripTabs && !d.quoted && c == "<" && previous == "<" {
            delimiter = nil  // `<<<`: bash's here-string, a word and no here-document
            return true
        }
        if let q = d.quote {
            if c == q { d.quote = nil } else { d.word.append(c) }
        } else if d.word.isEmpty && !d.stripTabs && c == "-" && previous == "<" {
            d.stripTabs = true
        } else if d.word.isEmpty && (c == " " || c == "\t") {
        } else if c == "'" || c == "\"" {
            d.quote = c; d.quoted = true
        } else if c == "\\" {
            d.quoted = true; escaped = true
        } else if " \t\n;&|<>()".contains(c) {
            // The word ends here; `c` is command text again.
            pendingHeredocs.append((d.word, d.quoted, d.stripTabs))
            delimiter = nil
            return false
        } else {
            d.word.append(c)
        }
        delimiter = d
        return true
    }

    /// A newline in command text: the bodies of the here-documents begun on that line follow.
    private mutating func startHeredocs() {
        for (d, quoted, strip) in pendingHeredocs.reversed() {
            stack.append(.heredoc(delimiter: d, quoted: quoted, stripTabs: strip, line: ""))
        }
        pendingHeredocs.removeAll()
    }

    private mutating func shift(_ c: Character) { beforePrevious = previous; previous = c }
}
