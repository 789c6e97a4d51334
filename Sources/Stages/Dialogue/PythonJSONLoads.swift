/// Python's `json.loads` (CPython's C scanner, `strict=True`) and `int()`, for reading what a
/// model wrote exactly as the reference's Python reads it (the router's reply:
/// `DecoderRouter.parsed`). What Python accepts is accepted, and nothing else: `NaN`,
/// `Infinity` and `-Infinity` are numbers; a repeated key keeps its last value; whitespace is
/// space, tab, newline and return only; a raw control character inside a string, a trailing
/// comma, a leading zero, `1.` and single quotes are refused; `\uD83D\uDE00` pairs are joined
/// and a lone surrogate is kept (a Swift string cannot hold one, so such a string is nil).
///
///     try PythonJSONLoads.loads(#"{"teacher": true, "teacher": 1.7}"#)  // .dict(["teacher": .float(1.7)])
///     PythonJSONLoads.int(.float(1.7))                                    // 1, as int(1.7)
public enum PythonJSONLoads {
    public indirect enum Value: Sendable, Equatable {
        case none
        case bool(Bool)
        /// nil: outside Int's range (Python's ints have no bound; `int()` of one is too large
        /// for any use here).
        case int(Int?)
        case float(Double)
        /// nil: the string holds a lone surrogate.
        case string(String?)
        case list([Value])
        /// A key holding a lone surrogate is left out: no Swift string can look it up.
        case dict([String: Value])
    }

    /// Why `loads` refused a text, in Python's words, and where (a code point offset).
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public var position: Int
        public var description: String { "\(message) (char \(position))" }
    }

    /// Nesting deeper than this fails, as CPython's recursion limit (1000 frames, less the
    /// caller's: 995 levels from a script's top level in CPython 3.11) makes `json.loads`
    /// raise RecursionError. Only approximately Python's, which depends on the caller's depth;
    /// a 16-token reply cannot nest this deep.
    public static let maxDepth = 990

    /// `json.loads(text)`.
    public static func loads(_ text: String) throws(Failure) -> Value {
        try loads(Array(text.unicodeScalars))
    }

    /// `json.loads` of code points (Python's `str`).
    public static func loads(_ text: [Unicode.Scalar]) throws(Failure) -> Value {
        var s = Scanner(s: text)
        s.skipSpace()
        let v = try s.value(depth: 0)
        s.skipSpace()
        if s.i != text.count { throw Failure(message: "Extra data", position: s.i) }
        return v
    }

    /// `int(v)`, or nil where Python raises (None, a list, a dict, NaN, an infinity, a string
    /// that is not a base-10 integer) or where the result is outside Int's range.
    public static func int(_ v: Value) -> Int? {
        switch v {
        case .bool(let b): return b ? 1 : 0
        case .int(let n): return n
        case .float(let d):
            // Truncation toward zero; Python raises on NaN and the infinities.
            guard d.isFinite, d.magnitude < 9_223_372_036_854_775_808 else { return nil }
            return Int(d)
        case .string(let s): return s.flatMap(intFromString)
        case .none, .list, .dict: return nil
        }
    }

    /// `int(s)` with base 10 (CPython's `PyLong_FromUnicodeObject`): Unicode whitespace and
    /// decimal digits (`"١"`, `"１"`) first become ASCII, then optional ASCII whitespace, a sign,
    /// digits with single underscores between them (at most 4,300: `sys.int_max_str_digits`),
    /// optional whitespace. `"1.0"`, `"1e3"`, `"0x1"`, `""` are refused.
    static func intFromString(_ s: String) -> Int? {
        var ascii: [UInt8] = []
        for u in s.unicodeScalars {
            if u.isASCII { ascii.append(UInt8(u.value)) }
            else if pythonSpaces.contains(u.value) { ascii.append(0x20) }
            else if u.properties.numericType == .decimal, let d = u.properties.numericValue { ascii.append(0x30 + UInt8(d)) }
            else { return nil }
        }
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0D).contains($0) }  // Py_ISSPACE
        var i = 0
        while i < ascii.count, isSpace(ascii[i]) { i += 1 }
        var negative = false
        if i < ascii.count, ascii[i] == UInt8(ascii: "+") || ascii[i] == UInt8(ascii: "-") { negative = ascii[i] == UInt8(ascii: "-"); i += 1 }
        var digits: [UInt8] = []
        var previous: UInt8 = UInt8(ascii: "_")  // a leading underscore is refused like a doubled one
        while i < ascii.count, (0x30...0x39).contains(ascii[i]) || ascii[i] == UInt8(ascii: "_") {
            if ascii[i] == UInt8(ascii: "_") { if previous == UInt8(ascii: "_") { return nil } } else { digits.append(ascii[i] - 0x30) }
            previous = ascii[i]; i += 1
        }
        guard !digits.isEmpty, previous != UInt8(ascii: "_"), digits.count <= 4300 else { return nil }
        while i < ascii.count, isSpace(ascii[i]) { i += 1 }
        guard i == ascii.count else { return nil }
        var n = 0
        for d in digits {
            let (m, o1) = n.multipliedReportingOverflow(by: 10), (a, o2) = m.subtractingReportingOverflow(Int(d))  // built negative: Int.min fits
            if o1 || o2 { return nil }
            n = a
        }
        if negative { return n }
        return n == Int.min ? nil : -n
    }

    /// The non-ASCII code points `str.isspace()` accepts (bidirectional class WS, B or S, or
    /// category Zs), which `int()` strips.
    static let pythonSpaces: Set<UInt32> = [0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007,
                                            0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]

    /// CPython's `scan_once_unicode` over code points.
    struct Scanner {
        let s: [Unicode.Scalar]
        var i = 0

        func failure(_ message: String, at position: Int? = nil) -> Failure { Failure(message: message, position: position ?? i) }

        /// JSON's whitespace only: `[ \t\n\r]*`.
        mutating func skipSpace() {
            while i < s.count, s[i] == " " || s[i] == "\t" || s[i] == "\n" || s[i] == "\r" { i += 1 }
        }

        func matches(_ word: String) -> Bool {
            let w = Array(word.unicodeScalars)
            return i + w.count <= s.count && Array(s[i..<(i + w.count)]) == w
        }

        mutating func value(depth: Int) throws(Failure) -> Value {
            guard i < s.count else { throw failure("Expecting value") }
            let constants: [(String, Value)] = [("null", .none), ("true", .bool(true)), ("false", .bool(false)),
                                                 ("NaN", .float(.nan)), ("Infinity", .float(.infinity)), ("-Infinity", .float(-.infinity))]
            switch s[i] {
            case "\"": i += 1; return .string(try string())
            case "{", "[":
                guard depth < PythonJSONLoads.maxDepth else { throw failure("RecursionError: maximum recursion depth exceeded") }
                return s[i] == "{" ? try object(depth: depth + 1) : try list(depth: depth + 1)
            default:
                if let (word, v) = constants.first(where: { matches($0.0) }) { i += word.unicodeScalars.count; return v }
                return try number()
            }
        }

        mutating func object(depth: Int) throws(Failure) -> Value {
            i += 1  // {
            var members: [String: Value] = [:]
            skipSpace()
            if i < s.count, s[i] == "}" { i += 1; return .dict(members) }
            while true {
                guard i < s.count, s[i] == "\"" else { throw failure("Expecting property name enclosed in double quotes") }
                i += 1
                let key = try string()
                skipSpace()
                guard i < s.count, s[i] == ":" else { throw failure("Expecting ':' delimiter") }
                i += 1
                skipSpace()
                let v = try value(depth: depth)
                if let key { members[key] = v }  // a repeated key: the last value wins, as in a Python dict
                skipSpace()
                guard i < s.count, s[i] == "," || s[i] == "}" else { throw failure("Expecting ',' delimiter") }
                i += 1
                if s[i - 1] == "}" { return .dict(members) }
                skipSpace()
            }
        }

        mutating func list(depth: Int) throws(Failure) -> Value {
            i += 1  // [
            var items: [Value] = []
            skipSpace()
            if i < s.count, s[i] == "]" { i += 1; return .list(items) }
            while true {
                items.append(try value(depth: depth))
                skipSpace()
                guard i < s.count, s[i] == "," || s[i] == "]" else { throw failure("Expecting ',' delimiter") }
                i += 1
                if s[i - 1] == "]" { return .list(items) }
                skipSpace()
            }
        }

        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, ASCII digits only; a fraction or
        /// an exponent makes a float (an overflow is an infinity, as Python's float()).
        mutating func number() throws(Failure) -> Value {
            let start = i
            func isDigit(_ k: Int) -> Bool { k < s.count && s[k].value >= 0x30 && s[k].value <= 0x39 }
            if i < s.count, s[i] == "-" { i += 1 }
            if isDigit(i) && s[i] != "0" { while isDigit(i) { i += 1 } } else if isDigit(i) { i += 1 } else {
                throw failure("Expecting value", at: start)
            }
            var isFloat = false
            if i < s.count, s[i] == ".", isDigit(i + 1) { isFloat = true; i += 1; while isDigit(i) { i += 1 } }
            if i < s.count, s[i] == "e" || s[i] == "E" {
                let e = i
                i += 1
                if i < s.count, s[i] == "-" || s[i] == "+" { i += 1 }
                if isDigit(i) { isFloat = true; while isDigit(i) { i += 1 } } else { i = e }  // no digits: backtrack
            }
            let text = String(String.UnicodeScalarView(s[start..<i]))
            if isFloat { return .float(Double(text) ?? .nan) }
            let digits = text.utf8.count - (text.hasPrefix("-") ? 1 : 0)
            if digits > 4300 { throw failure("ValueError: Exceeds the limit (4300 digits) for integer string conversion", at: start) }
            return .int(Int(text))
        }

        /// The rest of a string after its opening quote (`scanstring_unicode`, strict); nil
        /// when it holds a lone surrogate.
        mutating func string() throws(Failure) -> String? {
            let begin = i - 1
            var out = String.UnicodeScalarView()
            var lone = false
            while true {
                guard i < s.count else { throw failure("Unterminated string starting at", at: begin) }
                let c = s[i]
                i += 1
                if c == "\"" { return lone ? nil : String(out) }
                if c.value <= 0x1F { throw failure("Invalid control character at", at: i - 1) }
                if c != "\\" { out.append(c); continue }
                guard i < s.count else { throw failure("Unterminated string starting at", at: begin) }
                let e = s[i]
                i += 1
                let simple: [Unicode.Scalar: Unicode.Scalar] = ["\"": "\"", "\\": "\\", "/": "/", "b": "\u{08}", "f": "\u{0C}",
                                                                 "n": "\n", "r": "\r", "t": "\t"]
                if let r = simple[e] { out.append(r); continue }
                guard e == "u" else { throw failure("Invalid \\escape", at: i - 2) }
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code), i + 1 < s.count, s[i] == "\\", s[i + 1] == "u" {
                    let back = i
                    i += 2
                    let low = try hex4()
                    if (0xDC00...0xDFFF).contains(low) { code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00) } else { i = back }
                }
                if let u = Unicode.Scalar(code) { out.append(u) } else { lone = true }
            }
        }

        /// Four hex digits after `\u`.
        mutating func hex4() throws(Failure) -> UInt32 {
            guard i + 4 <= s.count else { throw failure("Invalid \\uXXXX escape", at: i - 1) }
            var code: UInt32 = 0
            for k in i..<(i + 4) {
                guard let d = Int(String(s[k]), radix: 16) else { throw failure("Invalid \\uXXXX escape", at: i - 1) }
                code = code << 4 | UInt32(d)
            }
            i += 4
            return code
        }
    }
}
