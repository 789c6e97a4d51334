#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A stage parameter, declared once: its name (the property's), type, default and meaning.
/// Decoding, defaults, the cache key, `--help` and the stage-type reference all read it.
///
///     struct Params: StageParameters {
///         @Param("optimisation steps") var steps: Int                    // required
///         @Param("sequences per step") var batch_size = 8                  // default 8
///         @Param("learning-rate schedule") var schedule = Schedule.cosine  // one of an enum's cases
///         @Param("written to config.json") var eos_token_id: Int? = nil    // optional, no default
///         init() {}
///     }
///
/// The property name is the parameter's name in the spec (snake_case, as the reference's
/// flags). A parameter without a default must be given; one whose default is `nil` may be
/// left out and stays out of the cache key.
@propertyWrapper
public struct Param<Value: ParameterValue>: Sendable {
    let help: String
    /// nil: required.
    let defaultValue: Value?
    let slot = Slot<Value>()

    public init(wrappedValue: Value, _ help: String) { self.help = help; defaultValue = wrappedValue }
    public init(_ help: String) { self.help = help; defaultValue = nil }

    public var wrappedValue: Value {
        guard let v = slot.value ?? defaultValue else { preconditionFailure("parameter read before decoding: \(help)") }
        return v
    }
}

/// Holds a decoded value: written once by `StageParameters.decode`, on a fresh instance,
/// before the parameters are handed to anyone.
final class Slot<Value: Sendable>: @unchecked Sendable {
    var value: Value?
}

/// What `Param` shows the decoder, whatever its value type.
protocol AnyParam {
    func declaration(name: String) -> ParameterDeclaration
    /// Decodes `json` into the slot; returns the effective value (nil: left out).
    func assign(_ json: JSONValue?, at path: JSONPath) -> Result<JSONValue?, SpecProblem>
    /// After a failed `assign`: puts a stand-in value into the slot, if the type has one, so
    /// that the rest of the stage can still be checked; false when it has none.
    func standIn() -> Bool
}

extension Param: AnyParam {
    func declaration(name: String) -> ParameterDeclaration {
        ParameterDeclaration(name: name, type: Value.parameterType, choices: Value.parameterChoices,
                             defaultValue: defaultValue.map(\.parameterJSON), required: defaultValue == nil, help: help)
    }

    func assign(_ json: JSONValue?, at path: JSONPath) -> Result<JSONValue?, SpecProblem> {
        guard let json else {
            guard let d = defaultValue else { return .failure(SpecProblem(path.parent ?? path, "missing parameter '\(path.lastKey ?? "")'")) }
            let j = d.parameterJSON
            return .success(j == .null ? JSONValue?.none : j)  // (a bare nil would be JSONValue.null: ExpressibleByNilLiteral)
        }
        do {
            let v = try Value(parameter: json, at: path)
            slot.value = v
            let j = v.parameterJSON
            return .success(j == .null ? JSONValue?.none : j)  // (a bare nil would be JSONValue.null: ExpressibleByNilLiteral)
        } catch { return .failure(error) }
    }

    func standIn() -> Bool {
        if defaultValue != nil { return true }
        guard let v = Value.standIn else { return false }
        slot.value = v
        return true
    }
}

/// Parameters shared by several stage types (a group's parameters join the stage's own,
/// under their own names).
public protocol ParameterGroup: Sendable { init() }

/// A stage type's parameters: a struct of `@Param` properties (and `ParameterGroup`s).
public protocol StageParameters: ParameterGroup {}

/// One declared parameter, as `--help`, `haps-pipe types` and docs/stages.md print it.
public struct ParameterDeclaration: Sendable, Equatable {
    public var name: String
    /// "an integer", "a string", "an array of strings", ...
    public var type: String
    /// The allowed values of an enum parameter.
    public var choices: [String]?
    /// The default as JSON (null: optional without a default); nil when required.
    public var defaultValue: JSONValue?
    public var required: Bool
    public var help: String

    /// "steps (an integer, required): optimisation steps", "batch_size (an integer, default 8): ...".
    public var summary: String {
        let what = required ? "required" : defaultValue.map { $0 == .null ? "optional" : "default \($0.canonical)" } ?? "optional"
        let type = choices.map { "one of " + $0.joined(separator: ", ") } ?? self.type
        return "\(name) (\(type), \(what))" + (help.isEmpty ? "" : ": \(help)")
    }
}

extension ParameterGroup {
    /// The declared parameters, in declaration order (groups flattened where they stand).
    public static var declarations: [ParameterDeclaration] { params(of: Self()).map { $0.param.declaration(name: $0.name) } }

    static func params(of value: Any) -> [(name: String, param: any AnyParam)] {
        var out: [(String, any AnyParam)] = []
        for child in Mirror(reflecting: value).children {
            if let p = child.value as? any AnyParam, let label = child.label {
                out.append((label.hasPrefix("_") ? String(label.dropFirst()) : label, p))
            } else if child.value is any ParameterGroup {
                out += params(of: child.value)
            }
        }
        return out
    }

    /// Decodes a spec's `params` object: every problem at once (unknown names with the closest
    /// valid one, type errors at their JSON path, missing parameters), and the parameters with
    /// the *effective* JSON (defaults applied, `nil`-default ones left out) that the cache key
    /// digests, so that an omitted default and a written one are the same work. When the only
    /// bad values are of parameters that have defaults, `value` is still given (with those
    /// defaults, or an enum's first case) so that the caller can go on checking the rest of the
    /// stage; such a value is never run, since the spec has problems.
    public static func decode(_ json: JSONValue, at path: JSONPath, stageType: String) -> DecodedParameters<Self> {
        guard let members = json.objectMembers else {
            return DecodedParameters(value: nil, effective: json,
                                     problems: [SpecProblem(path, "expected an object of parameters, found \(json.typeDescription)")])
        }
        let value = Self()
        let params = params(of: value)
        let known = params.map(\.name)
        var problems: [SpecProblem] = []
        for (name, _) in members where !known.contains(name) {
            problems.append(SpecProblem(path.appending(name),
                "unknown parameter '\(name)' for stage type '\(stageType)'" + NearestName.hint(name, among: known)))
        }
        var effective: [(String, JSONValue)] = [], usable = true
        for (name, param) in params {
            switch param.assign(json[name], at: path.appending(name)) {
            case .success(let j): if let j { effective.append((name, j)) }
            case .failure(let p):
                problems.append(p)
                if !param.standIn() { usable = false }
            }
        }
        return DecodedParameters(value: usable ? value : nil, effective: .object(effective), problems: problems)
    }
}

/// What decoding a `params` object gave: the parameters (nil when a required one is missing or
/// bad), their effective JSON, and the problems found.
public struct DecodedParameters<P: Sendable>: Sendable {
    public var value: P?
    public var effective: JSONValue
    public var problems: [SpecProblem]

    /// The parameters, or every problem.
    public func get() throws(ParamDecodingProblems) -> P {
        guard problems.isEmpty, let value else { throw ParamDecodingProblems(problems: problems) }
        return value
    }

    func erased() -> DecodedParameters<any Sendable> {
        DecodedParameters<any Sendable>(value: value.map { $0 as any Sendable }, effective: effective, problems: problems)
    }
}

extension ParameterGroup {
    /// Parameters from a JSON object, as a spec's `params` would give them (for callers that
    /// run a stage's or the method's logic outside a pipeline, and tests).
    public static func from(_ json: JSONValue) throws(ParamDecodingProblems) -> Self {
        try decode(json, at: JSONPath.root.appending("params"), stageType: "\(Self.self)").get()
    }
}

/// Problems found while decoding a stage's parameters.
public struct ParamDecodingProblems: Error, Sendable, CustomStringConvertible {
    public var problems: [SpecProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

// MARK: - Values

/// A type a parameter may have: decoded from spec JSON with an error at its path, and written
/// back as JSON (for the key and the docs).
public protocol ParameterValue: Sendable {
    /// "an integer", "a number", ...: for errors and docs.
    static var parameterType: String { get }
    /// The allowed values, for enums.
    static var parameterChoices: [String]? { get }
    /// A value that stands in for a bad one while the rest of a spec is checked (enums: their
    /// first case); nil where any value could raise problems of its own (numbers).
    static var standIn: Self? { get }
    init(parameter json: JSONValue, at path: JSONPath) throws(SpecProblem)
    var parameterJSON: JSONValue { get }
}

extension ParameterValue {
    public static var parameterChoices: [String]? { nil }
    public static var standIn: Self? { nil }
    public static func mismatch(_ json: JSONValue, at path: JSONPath) -> SpecProblem {
        // A scalar is shown (`found 1e+30`, `found 2.5`): its type alone may not say what is wrong.
        let found: String
        switch json {
        case .number, .bool: found = json.canonical
        case .string(let s) where s.count <= 40: found = "the string " + json.canonical
        default: found = json.typeDescription
        }
        return SpecProblem(path, "expected \(parameterType), found \(found)")
    }
}

/// A string-valued parameter with a fixed set of values: a typo is an error with the closest
/// valid value ("did you mean"), never a silent fallback.
///
///     enum Schedule: String, ParameterEnum { case cosine, linear, constant }
public protocol ParameterEnum: ParameterValue, CaseIterable, RawRepresentable where RawValue == String {}

extension ParameterEnum {
    public static var parameterType: String { "a string" }
    public static var parameterChoices: [String]? { allCases.map(\.rawValue) }
    public static var standIn: Self? { allCases.first }
    public init(parameter json: JSONValue, at path: JSONPath) throws(SpecProblem) {
        guard let s = json.stringValue else { throw Self.mismatch(json, at: path) }
        guard let v = Self(rawValue: s) else {
            throw SpecProblem(path, "unknown \(path.lastKey ?? "value") '\(s)'" + NearestName.hintOrChoices(s, among: Self.allCases.map(\.rawValue)))
        }
        self = v
    }
    public var parameterJSON: JSONValue { .string(rawValue) }
}

/// A parameter value read straight from one JSON scalar.
protocol ScalarParameter: ParameterValue {
    static func scalar(_ json: JSONValue) -> Self?
}

extension ScalarParameter {
    public init(parameter json: JSONValue, at path: JSONPath) throws(SpecProblem) {
        guard let v = Self.scalar(json) else { throw Self.mismatch(json, at: path) }
        self = v
    }
}

extension Int: ScalarParameter {
    public static var parameterType: String { "an integer" }
    static func scalar(_ json: JSONValue) -> Int? { json.intValue }
    public var parameterJSON: JSONValue { .number(Double(self)) }
}

extension Double: ScalarParameter {
    public static var parameterType: String { "a number" }
    static func scalar(_ json: JSONValue) -> Double? { json.doubleValue }
    public var parameterJSON: JSONValue { .number(self) }
}

extension String: ScalarParameter {
    public static var parameterType: String { "a string" }
    static func scalar(_ json: JSONValue) -> String? { json.stringValue }
    public var parameterJSON: JSONValue { .string(self) }
}

extension Bool: ScalarParameter {
    public static var parameterType: String { "a boolean" }
    static func scalar(_ json: JSONValue) -> Bool? { if case .bool(let b) = json { return b } else { return nil } }
    public var parameterJSON: JSONValue { .bool(self) }
}

extension JSONValue: ParameterValue {
    public static var parameterType: String { "any JSON value" }
    public init(parameter json: JSONValue, at path: JSONPath) throws(SpecProblem) { self = json }
    public var parameterJSON: JSONValue { self }
}

extension Optional: ParameterValue where Wrapped: ParameterValue {
    public static var parameterType: String { Wrapped.parameterType }
    public static var parameterChoices: [String]? { Wrapped.parameterChoices }
    public init(parameter json: JSONValue, at path: JSONPath) throws(SpecProblem) {
        self = json == .null ? nil : try Wrapped(parameter: json, at: path)
    }
    public var parameterJSON: JSONValue { map(\.parameterJSON) ?? .null }
}

extension Array: ParameterValue where Element: ParameterValue {
    public static var parameterType: String { "an array" }
    public init(parameter json: JSONValue, at path: JSONPath) throws(SpecProblem) {
        guard let a = json.arrayValue else { throw Self.mismatch(json, at: path) }
        var out: [Element] = []
        for (i, e) in a.enumerated() { out.append(try Element(parameter: e, at: path.appending(index: i))) }
        self = out
    }
    public var parameterJSON: JSONValue { .array(map(\.parameterJSON)) }
}

extension Dictionary: ParameterValue where Key == String, Value: ParameterValue {
    public static var parameterType: String { "an object" }
    public init(parameter json: JSONValue, at path: JSONPath) throws(SpecProblem) {
        guard let m = json.objectMembers else { throw Self.mismatch(json, at: path) }
        var out: [String: Value] = [:]
        for (k, v) in m { out[k] = try Value(parameter: v, at: path.appending(k)) }
        self = out
    }
    public var parameterJSON: JSONValue { .object(keys.sorted().map { ($0, self[$0]!.parameterJSON) }) }
}
