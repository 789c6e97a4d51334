#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// One input of a stage type: its name and the artifact kind it accepts.
public struct InputPort: Sendable, Equatable {
    public var name: String
    public var kind: ArtifactKind
    public var optional: Bool
    public var help: String
    /// What a user's own file given to this port must hold, checked before anything runs.
    public var check: InputCheck?
    public init(_ name: String, kind: ArtifactKind, optional: Bool = false, help: String = "", check: InputCheck? = nil) {
        self.name = name; self.kind = kind; self.optional = optional; self.help = help; self.check = check
    }
    public static func == (a: InputPort, b: InputPort) -> Bool {
        a.name == b.name && a.kind == b.kind && a.optional == b.optional && a.help == b.help && a.check?.name == b.check?.name
    }
}

/// A check of the contents of a user's own input (a path in the spec), run before anything
/// runs so that a questions file lacking a field fails at once, naming the file and line,
/// not after an hour of upstream work, naming the store's snapshot of it. A check that passed
/// is remembered for the file's content (its digest), so a rerun does not read it again.
public struct InputCheck: Sendable {
    /// Identifies the check and its version (`plain-questions-1`): a changed check runs anew.
    public var name: String
    /// Reads the file or directory at the path; throws what is wrong with it.
    public var run: @Sendable (String) throws -> Void
    public init(_ name: String, _ run: @escaping @Sendable (String) throws -> Void) { self.name = name; self.run = run }
}

/// The ports of a stage with given parameters: named inputs and the kind of its one output.
public struct StagePorts: Sendable {
    public var inputs: [InputPort]
    public var output: ArtifactKind
    /// When set, inputs with any name are accepted with this kind (the `command` stage).
    public var openInputKind: ArtifactKind?
    public init(inputs: [InputPort], output: ArtifactKind, openInputKind: ArtifactKind? = nil) {
        self.inputs = inputs; self.output = output; self.openInputKind = openInputKind
    }
}

/// A problem found while validating a spec, at a JSON path.
public struct SpecProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: JSONPath
    public var message: String
    public init(_ path: JSONPath, _ message: String) { self.path = path; self.message = message }
    public var description: String { path == SpecProblem.commandLine ? message : "\(path): \(message)" }
    /// The path of problems in `--set` overrides, which are not in the file.
    public static let commandLine = JSONPath([.key("--set")])
}

/// A stage type: what it consumes and produces, its parameters and how to run it.
///
///     struct Concat: StageType {
///         struct Params: StageParameters {
///             @Param("put between the inputs") var separator = "\n"
///             init() {}
///         }
///         static let name = "concat"
///         static let version = 1
///         static func ports(_ p: Params) -> StagePorts { .init(inputs: [.init("a", kind: "text")], output: "text") }
///         static func run(_ p: Params, _ context: StageContext) throws { ... write into context.outputDirectory ... }
///     }
///
/// `version` is part of every key: bump it when a change in `run` changes outputs, so that
/// cached results of the old code are not reused.
public protocol StageType: Sendable {
    associatedtype Params: StageParameters
    static var name: String { get }
    static var version: Int { get }
    static var summary: String { get }
    static func ports(_ params: Params) -> StagePorts
    /// Extra checks beyond decoding (cross-field rules), reported with the spec's paths.
    static func validate(_ params: Params, at path: JSONPath) -> [SpecProblem]
    /// Names of spec resources the stage uses ("models.llama", "retriever"); their identities join the key.
    static func resources(_ params: Params) -> [String]
    /// What stops a run before anything starts, given the resources the stage resolved and the
    /// input ports the spec wires (e.g. a stage that needs weights given only a server).
    static func preflight(_ params: Params, resources: [String: JSONValue], inputs: Set<String>) -> [String]
    static func run(_ params: Params, _ context: StageContext) throws
    /// The summary figures of an output of this type (read from its files in `directory`), in
    /// a fixed order: what a sweep table shows for it (`best_fixed_f1`, `sft_rows`, ...).
    static func figures(directory: String) -> [Figure]
}

/// A named number a stage's output reports, for sweep tables and comparisons.
public struct Figure: Sendable, Equatable {
    public var name: String
    public var value: Double
    public init(_ name: String, _ value: Double) { self.name = name; self.value = value }
}

extension StageType {
    public static var summary: String { "" }
    public static func validate(_ params: Params, at path: JSONPath) -> [SpecProblem] { [] }
    public static func resources(_ params: Params) -> [String] { [] }
    public static func preflight(_ params: Params, resources: [String: JSONValue], inputs: Set<String>) -> [String] { [] }
    public static func figures(directory: String) -> [Figure] { [] }
}

/// A type-erased stage type, as the registry and the scheduler hold it.
public struct StageDefinition: Sendable {
    public let name: String
    public let version: Int
    public let summary: String
    /// The declared parameters (name, type, default, meaning), from the `Params` type itself.
    public let parameters: [ParameterDeclaration]
    /// Decoded parameters and their effective JSON (defaults applied), and every problem found.
    let decode: @Sendable (JSONValue, JSONPath) -> DecodedParameters<any Sendable>
    let portsOf: @Sendable (any Sendable) -> StagePorts
    let validateParams: @Sendable (any Sendable, JSONPath) -> [SpecProblem]
    let resourcesOf: @Sendable (any Sendable) -> [String]
    let preflightOf: @Sendable (any Sendable, [String: JSONValue], Set<String>) -> [String]
    let runner: @Sendable (any Sendable, StageContext) throws -> Void
    /// The summary figures of an output of this stage type, from its directory.
    public let figures: @Sendable (String) -> [Figure]

    public init<S: StageType>(_ type: S.Type) {
        name = S.name
        version = S.version
        summary = S.summary
        parameters = S.Params.declarations
        decode = { json, path in S.Params.decode(json, at: path, stageType: S.name).erased() }
        portsOf = { S.ports($0 as! S.Params) }
        validateParams = { S.validate($0 as! S.Params, at: $1) }
        resourcesOf = { S.resources($0 as! S.Params) }
        preflightOf = { S.preflight($0 as! S.Params, resources: $1, inputs: $2) }
        runner = { try S.run($0 as! S.Params, $1) }
        figures = { S.figures(directory: $0) }
    }
}

/// The stage types a spec may use, by name.
public struct StageRegistry: Sendable {
    public private(set) var definitions: [String: StageDefinition] = [:]
    public init() {}
    public init(_ types: [any StageType.Type]) { for t in types { register(t) } }

    public mutating func register(_ type: any StageType.Type) {
        let d = StageDefinition(type)
        definitions[d.name] = d
    }
    public subscript(name: String) -> StageDefinition? { definitions[name] }
    public var names: [String] { definitions.keys.sorted() }

    /// The framework's own stage types (`command`).
    public static let builtin = StageRegistry([CommandStage.self])
}

extension StageDefinition {
    /// The ports of a stage of this type as documentation shows them: with the parameters'
    /// defaults, placeholders for required ones (`<name>` in a list, so a port per candidate
    /// reads `model_<name>`), and a one-element `[<name>]` for an empty list default.
    public var documentedPorts: StagePorts? {
        var members: [(String, JSONValue)] = []
        for d in parameters {
            let empty = d.defaultValue?.arrayValue?.isEmpty ?? false
            guard d.required || empty else { continue }
            let placeholder: JSONValue
            if let c = d.choices?.first { placeholder = .string(c) }
            else if d.type.hasPrefix("an array") || empty { placeholder = .array(["<name>"]) }
            else if d.type.hasPrefix("a string") { placeholder = "<text>" }
            else if d.type == "an integer" || d.type == "a number" { placeholder = 1 }
            else if d.type == "a boolean" { placeholder = false }
            else { placeholder = .object([]) }
            members.append((d.name, placeholder))
        }
        guard let params = decode(.object(members), JSONPath.root).value else { return nil }
        return portsOf(params)
    }
}
