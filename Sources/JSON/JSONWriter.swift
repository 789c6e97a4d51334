/// Serialises `JSONValue`s: canonical (sorted keys, no spaces, fixed number format) for
/// hashing and storage, or pretty for people.
extension JSONValue {
    /// Canonical JSON: keys sorted by UTF-8 bytes, no insignificant whitespace, integers
    /// without a fraction, other numbers in the shortest form that round-trips.
    public var canonical: String {
        var out = ""
        write(to: &out, pretty: false, indent: 0)
        return out
    }

    /// Indented JSON for terminals and files people read (keys sorted as well).
    public var pretty: String {
        var out = ""
        write(to: &out, pretty: true, indent: 0)
        return out
    }

    private func write(to out: inout String, pretty: Bool, indent: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d): out += JSONValue.formatNumber(d)
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                item.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            // Last occurrence of a duplicate key wins, as in most JSON readers.
            var unique: [String: JSONValue] = [:]
            for m in members { unique[m.key] = m.value }
            let keys = unique.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            out += "{"
            for (i, key) in keys.enumerated() {
                if i > 0 { out += "," }
                if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                JSONValue.writeString(key, to: &out)
                out += pretty ? ": " : ":"
                unique[key]!.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "}"
        }
    }

    /// Integers in ±2^53 print without a fraction; other finite numbers use Swift's
    /// shortest round-tripping form; non-finite numbers (not JSON) print as null.
    public static func formatNumber(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d.rounded() == d && abs(d) < 9.007_199_254_740_992e15 {
            return d == 0 ? "0" : String(Int64(d))
        }
        return "\(d)"
    }

    /// Appends `s` as a JSON string: runs of plain bytes are copied whole, and only `"`, `\\`
    /// and control characters are escaped (the hot path of every canonical write).
    public static func writeString(_ s: String, to out: inout String) {
        out += "\""
        var s = s
        s.withUTF8 { buf in
            var start = 0
            for i in 0..<buf.count {
                let b = buf[i]
                guard b == 0x22 || b == 0x5C || b < 0x20 else { continue }
                if start < i { out += String(decoding: UnsafeBufferPointer(rebasing: buf[start..<i]), as: UTF8.self) }
                switch b {
                case 0x22: out += "\\\""
                case 0x5C: out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                case 0x08: out += "\\b"
                case 0x0C: out += "\\f"
                default:
                    let hex = String(b, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
                start = i + 1
            }
            if start < buf.count { out += String(decoding: UnsafeBufferPointer(rebasing: buf[start..<buf.count]), as: UTF8.self) }
        }
        out += "\""
    }

}
