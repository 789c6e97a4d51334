/// A JSON document tree whose objects keep their members in source order.
///
///     let v = try JSONParser.parse(#"{"b": 1, "a": [true, null]}"#)
///     v["b"]?.intValue   // 1
///     v.canonical        // {"a":[true,null],"b":1}
///
/// Order is kept so that validation reports problems in the order a reader sees them;
/// `canonical` sorts keys so that equal values always hash alike.
public enum JSONValue: Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            // Objects are equal as maps: member order does not matter.
            guard a.count == b.count else { return false }
            let sortedA = a.sorted { $0.key < $1.key }, sortedB = b.sorted { $0.key < $1.key }
            return zip(sortedA, sortedB).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(canonical) }

    /// Builds an object from a dictionary (members sorted by key).
    public static func object(_ dict: [String: JSONValue]) -> JSONValue {
        .object(dict.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last(where: { $0.key == key })?.value
    }

    public var objectMembers: [(key: String, value: JSONValue)]? {
        if case .object(let m) = self { return m }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var doubleValue: Double? {
        if case .number(let d) = self { return d }
        return nil
    }
    public var intValue: Int? {
        if case .number(let d) = self, d.rounded() == d, abs(d) < 9.007_199_254_740_992e15 { return Int(d) }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// A short English name of the value's JSON type, for error messages ("a string").
    public var typeDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Returns a copy with `value` set at the member path `keys` (creating objects on the way).
    public func setting(_ keys: ArraySlice<String>, to value: JSONValue) -> JSONValue {
        guard let first = keys.first else { return value }
        var members = objectMembers ?? []
        if let i = members.lastIndex(where: { $0.key == first }) {
            members[i].value = members[i].value.setting(keys.dropFirst(), to: value)
        } else {
            members.append((key: first, value: JSONValue.null.setting(keys.dropFirst(), to: value)))
        }
        return .object(members)
    }

    /// Returns a copy without the member `key` (objects only).
    public func removing(_ key: String) -> JSONValue {
        guard case .object(let members) = self else { return self }
        return .object(members.filter { $0.key != key })
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let m):
            var d: [String: JSONValue] = [:]
            for (k, v) in m { d[k] = v }
            try c.encode(d)
        }
    }
}
