public import Pipeline

/// JSON written the way Python's `json.dumps(value, indent=2, ensure_ascii=False)` writes it,
/// so that files meant to match the reference's match byte for byte: members in insertion
/// order, `", "`-free item separators with newlines, floats in Python's `repr` (always with a
/// point or an exponent: `1.0`, `0.25`, `1e-06`).
public enum PythonJSON {
    public indirect enum Value: Sendable {
        case string(String)
        case float(Double)
        case int(Int)
        case bool(Bool)
        case null
        case array([Value])
        case object([(String, Value)])
    }

    public static func dumps(_ v: Value, indent: Int = 2) -> String {
        var out = ""
        write(v, indent: indent, level: 0, into: &out)
        return out
    }

    /// Python's float repr: shortest round-trip digits, exponent outside 1e-4 ..< 1e16.
    public static func floatRepr(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return "\(d)"  // Swift's description agrees with Python's repr on these rules.
    }

    static func write(_ v: Value, indent: Int, level: Int, into out: inout String) {
        switch v {
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .float(let d): out += floatRepr(d)
        case .int(let i): out += String(i)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                out += (i == 0 ? "\n" : ",\n") + String(repeating: " ", count: indent * (level + 1))
                write(item, indent: indent, level: level + 1, into: &out)
            }
            out += "\n" + String(repeating: " ", count: indent * level) + "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{"
            for (i, (k, value)) in members.enumerated() {
                out += (i == 0 ? "\n" : ",\n") + String(repeating: " ", count: indent * (level + 1))
                JSONValue.writeString(k, to: &out)
                out += ": "
                write(value, indent: indent, level: level + 1, into: &out)
            }
            out += "\n" + String(repeating: " ", count: indent * level) + "}"
        }
    }
}
