/// A strict JSON (RFC 8259) parser that remembers where every value starts (for an object
/// member: where its key starts, which is where a reader looks for it).
///
///     let doc = try JSONParser.parseDocument(text)
///     doc.value["stages"]
///     doc.locations[JSONPath.root.appending("stages")]   // 3:13
///
/// Written by hand because Foundation's parser reports neither line:column of syntax errors
/// nor the positions of values, and spec validation must name both.
public struct JSONParser {
    /// A parsed document with the source location of each value.
    public struct Document: Sendable {
        public var value: JSONValue
        public var locations: [JSONPath: SourceLocation]
    }

    /// A syntax error with its position.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var location: SourceLocation
        public var message: String
        /// A well-formed number that a double cannot hold (not a malformed document).
        public var isNumberOutOfRange = false
        public var description: String { "\(location): \(message)" }
    }

    public static func parse(_ text: String) throws(SyntaxError) -> JSONValue {
        try parseDocument(text, recordLocations: false).value
    }

    public static func parse(bytes: [UInt8]) throws(SyntaxError) -> JSONValue {
        var p = JSONParser(bytes: bytes, recordLocations: false)
        return try p.parseTop().value
    }

    public static func parseDocument(_ text: String, recordLocations: Bool = true) throws(SyntaxError) -> Document {
        var p = JSONParser(bytes: Array(text.utf8), recordLocations: recordLocations)
        return try p.parseTop()
    }

    private let bytes: [UInt8]
    private var pos = 0
    private var line = 1
    private var lineStart = 0
    private let recordLocations: Bool
    private var locations: [JSONPath: SourceLocation] = [:]
    private var depth = 0

    private init(bytes: [UInt8], recordLocations: Bool) {
        self.bytes = bytes
        self.recordLocations = recordLocations
    }

    private mutating func parseTop() throws(SyntaxError) -> Document {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3; lineStart = 3 }
        skipWhitespace()
        let v = try parseValue(path: .root)
        skipWhitespace()
        if pos < bytes.count { throw error("unexpected \(describeHere()) after the end of the document") }
        return Document(value: v, locations: locations)
    }

    private var location: SourceLocation {
        // Column in characters: count UTF-8 lead bytes since the line start.
        var col = 1
        var i = lineStart
        while i < pos { if bytes[i] & 0xC0 != 0x80 { col += 1 }; i += 1 }
        return SourceLocation(line: line, column: col)
    }

    private func error(_ message: String) -> SyntaxError { SyntaxError(location: location, message: message) }

    /// An error located at byte `offset` of the current line (the start of a token).
    private mutating func error(_ message: String, at offset: Int, outOfRange: Bool) -> SyntaxError {
        let here = pos
        pos = offset
        defer { pos = here }
        var e = error(message)
        e.isNumberOutOfRange = outOfRange
        return e
    }

    private func describeHere() -> String {
        guard pos < bytes.count else { return "end of input" }
        let b = bytes[pos]
        if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        if b == 0x0A { return "end of line" }
        return "byte 0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
    }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0D: pos += 1
            case 0x0A: pos += 1; line += 1; lineStart = pos
            default: return
            }
        }
    }

    /// `at`: where the member that holds this value starts (its key), if it is a member.
    private mutating func parseValue(path: JSONPath, at memberStart: SourceLocation? = nil) throws(SyntaxError) -> JSONValue {
        guard pos < bytes.count else { throw error("unexpected end of input, expected a value") }
        if recordLocations { locations[path] = memberStart ?? location }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(path: path)
        case UInt8(ascii: "["): return try parseArray(path: path)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected \(describeHere()), expected a value")
        }
    }

    private mutating func literal(_ word: String) throws(SyntaxError) {
        let w = Array(word.utf8)
        guard pos + w.count <= bytes.count, Array(bytes[pos..<pos + w.count]) == w else {
            throw error("unexpected \(describeHere()), expected a value")
        }
        pos += w.count
    }

    private mutating func enter() throws(SyntaxError) {
        depth += 1
        if depth > 512 { throw error("nesting deeper than 512 levels") }
    }

    private mutating func parseObject(path: JSONPath) throws(SyntaxError) -> JSONValue {
        try enter(); defer { depth -= 1 }
        pos += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                throw error("unexpected \(describeHere()), expected a member name in double quotes")
            }
            let keyStart = recordLocations ? location : nil
            let key = try parseString()
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                throw error("unexpected \(describeHere()), expected ':' after member name")
            }
            pos += 1
            skipWhitespace()
            let value = try parseValue(path: path.appending(key), at: keyStart)
            members.append((key: key, value: value))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input, expected ',' or '}'") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                skipWhitespace()
                if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") { throw error("trailing ',' before '}'") }
                continue
            }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(members) }
            throw error("unexpected \(describeHere()), expected ',' or '}'")
        }
    }

    private mutating func parseArray(path: JSONPath) throws(SyntaxError) -> JSONValue {
        try enter(); defer { depth -= 1 }
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(path: path.appending(index: items.count)))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input, expected ',' or ']'") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                skipWhitespace()
                if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") { throw error("trailing ',' before ']'") }
                continue
            }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw error("unexpected \(describeHere()), expected ',' or ']'")
        }
    }

    private mutating func parseString() throws(SyntaxError) -> String {
        pos += 1
        var out: [UInt8] = []
        while true {
            guard pos < bytes.count else { throw error("unterminated string") }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") { pos += 1; break }
            if b < 0x20 { throw error(b == 0x0A ? "unterminated string (newline inside a string)" : "control character in string") }
            if b != UInt8(ascii: "\\") { out.append(b); pos += 1; continue }
            pos += 1
            guard pos < bytes.count else { throw error("unterminated string") }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), pos + 1 < bytes.count,
                   bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                    let save = pos
                    pos += 2
                    let low = try hex4()
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else { pos = save }
                }
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(scalar).utf8))
            default:
                pos -= 1
                throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))' in string")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func hex4() throws(SyntaxError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw error("incomplete \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            v = v * 16 + d
            pos += 1
        }
        return v
    }

    private mutating func parseNumber() throws(SyntaxError) -> Double {
        let start = pos
        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number") }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < bytes.count && isDigit(bytes[pos]) { throw error("invalid number (leading zero)") }
        } else {
            while pos < bytes.count && isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count && bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number (digit expected after '.')") }
            while pos < bytes.count && isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count && (bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E")) {
            pos += 1
            if pos < bytes.count && (bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number (digit expected in exponent)") }
            while pos < bytes.count && isDigit(bytes[pos]) { pos += 1 }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        guard let d = Double(text) else { throw error("invalid number") }
        // What a double cannot hold is an error, never a silent change: an overflow to
        // infinity, and an integer that would be rounded (beyond ±2^53).
        guard d.isFinite else { throw error("number \(text) is out of range (beyond ±1.8e308)", at: start, outOfRange: true) }
        let integer = !bytes[start..<pos].contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        if integer && abs(d) >= 9_007_199_254_740_992, Int64(text).map({ Int64(exactly: d) != $0 }) ?? true {
            throw error("integer \(text) cannot be held exactly (a number is a double: integers beyond ±2^53 are rounded); write it as a string",
                        at: start, outOfRange: true)
        }
        return d
    }
}
