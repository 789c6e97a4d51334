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

    /// `indent` nil: one line with Python's default separators `", "` and `": "`.
    public static func dumps(_ v: Value, indent: Int? = 2) -> String {
        var out = ""
        if let indent { write(v, indent: indent, level: 0, into: &out) } else { writeCompact(v, into: &out) }
        return out
    }

    /// A parsed JSON value as Python would hold it after `json.loads` (integral numbers
    /// written without a point are ints; others floats).
    public static func value(_ j: JSONValue) -> Value {
        switch j {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let d): return d.rounded() == d && abs(d) < 1e15 ? .int(Int(d)) : .float(d)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(value))
        case .object(let m): return .object(m.map { ($0.key, value($0.value)) })
        }
    }

    static func writeCompact(_ v: Value, into out: inout String) {
        switch v {
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() { if i > 0 { out += ", " }; writeCompact(item, into: &out) }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (k, value)) in members.enumerated() {
                if i > 0 { out += ", " }
                JSONValue.writeString(k, to: &out)
                out += ": "
                writeCompact(value, into: &out)
            }
            out += "}"
        default: write(v, indent: 0, level: 0, into: &out)
        }
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
