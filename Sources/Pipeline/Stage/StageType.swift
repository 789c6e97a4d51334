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
    public init(_ name: String, kind: ArtifactKind, optional: Bool = false, help: String = "") {
        self.name = name; self.kind = kind; self.optional = optional; self.help = help
    }
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

/// A parameter a stage type accepts, for strict decoding, suggestions and `--help`.
public struct ParameterInfo: Sendable {
    public var name: String
    public var help: String
    public init(_ name: String, _ help: String = "") { self.name = name; self.help = help }
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
///         struct Params: Decodable, Sendable { var separator: String = "\n" }
///         static let name = "concat"
///         static let version = 1
///         static let parameters = [ParameterInfo("separator")]
///         static func ports(_ p: Params) -> StagePorts { .init(inputs: [.init("a", kind: "text")], output: "text") }
///         static func run(_ p: Params, _ context: StageContext) throws { ... write into context.outputDirectory ... }
///     }
///
/// `version` is part of every key: bump it when a change in `run` changes outputs, so that
/// cached results of the old code are not reused.
public protocol StageType: Sendable {
    associatedtype Params: Decodable & Sendable
    static var name: String { get }
    static var version: Int { get }
    static var summary: String { get }
    static var parameters: [ParameterInfo] { get }
    static func ports(_ params: Params) -> StagePorts
    /// Extra checks beyond decoding (cross-field rules), reported with the spec's paths.
    static func validate(_ params: Params, at path: JSONPath) -> [SpecProblem]
    /// Names of spec resources the stage uses ("models.llama", "retriever"); their identities join the key.
    static func resources(_ params: Params) -> [String]
    static func run(_ params: Params, _ context: StageContext) throws
}

extension StageType {
    public static var summary: String { "" }
    public static func validate(_ params: Params, at path: JSONPath) -> [SpecProblem] { [] }
    public static func resources(_ params: Params) -> [String] { [] }
}

/// A type-erased stage type, as the registry and the scheduler hold it.
public struct StageDefinition: Sendable {
    public let name: String
    public let version: Int
    public let summary: String
    public let parameters: [ParameterInfo]
    let decode: @Sendable (JSONValue, JSONPath) -> Result<any Sendable, ParamDecodingProblems>
    let portsOf: @Sendable (any Sendable) -> StagePorts
    let validateParams: @Sendable (any Sendable, JSONPath) -> [SpecProblem]
    let resourcesOf: @Sendable (any Sendable) -> [String]
    let runner: @Sendable (any Sendable, StageContext) throws -> Void

    public init<S: StageType>(_ type: S.Type) {
        name = S.name
        version = S.version
        summary = S.summary
        parameters = S.parameters
        decode = { json, path in
            ParamDecoder.decode(S.Params.self, from: json, at: path, known: S.parameters.map(\.name), stageType: S.name)
                .map { $0 as any Sendable }
        }
        portsOf = { S.ports($0 as! S.Params) }
        validateParams = { S.validate($0 as! S.Params, at: $1) }
        resourcesOf = { S.resources($0 as! S.Params) }
        runner = { try S.run($0 as! S.Params, $1) }
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
