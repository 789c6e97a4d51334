#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import JSON
public import LLM
public import Pipeline

/// Which engine runs a learning stage's models (docs/engine.md): `cpu` (this program's, the
/// default) or `torch` (the PyTorch worker, for GPUs).
public enum EngineKind: String, ParameterEnum { case cpu, torch }

/// The models' number format on the torch engine: float32 (exact against the CPU engine) or
/// bfloat16 (half the memory and twice the speed on a GPU; the reference's precision).
public enum EngineDType: String, ParameterEnum { case float32, bfloat16 }

/// The engine parameters of `sft-train`, `rl-train`, `evaluate` and `embed`, declared once: `engine`,
/// `device` and `dtype`. All are part of the stage key when given; left out, the stage runs
/// on the CPU engine and its key is what it was before these parameters existed.
///
///     "params": {"engine": "torch", "device": "cuda", "dtype": "bfloat16"}
///     "params": {"engine": "torch", "device": {"router": "cuda:0", "candidates": "cuda:1"}}
public struct EngineParams: ParameterGroup {
    @Param("the engine that runs the models: cpu (this program's own, the default) or torch (a PyTorch worker, for GPUs; HAPS_TORCH_PYTHON names its Python)")
    var engine: EngineKind? = nil
    @Param("torch engine: where the models go: cpu, cuda or cuda:N (default cuda), or a map by model: {\"router\": \"cuda:0\", \"candidates\": \"cuda:1\", \"<candidate>\": ..., \"default\": ...}")
    var device: JSONValue? = nil
    @Param("torch engine: the models' dtype: float32 (the default; exact against the cpu engine) or bfloat16")
    var dtype: EngineDType? = nil
    public init() {}

    var kind: EngineKind { engine ?? .cpu }

    func validate(at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        // Without an engine named, a device or dtype is a mistake (it would do nothing); with
        // "engine": "cpu" named, they are kept for when the stage goes back to torch
        // (`--set STAGE.engine=cpu` on a GPU pipeline) and ignored, with a note at run time.
        if engine == nil {
            for (name, given) in [("device", device != nil), ("dtype", dtype != nil)] where given {
                problems.append(SpecProblem(path.appending(name), "'\(name)' is the torch engine's: set \"engine\": \"torch\", or leave it out"))
            }
        }
        if let device {
            do { _ = try placement(device) } catch { problems.append(SpecProblem(path.appending("device"), error.message)) }
        }
        return problems
    }

    /// The device parameter as a placement: a device for every model, or one per model name.
    func placement(_ json: JSONValue?) throws(SpecMessage) -> TorchEngine.Placement {
        func device(_ v: JSONValue, _ what: String) throws(SpecMessage) -> String {
            guard let s = v.stringValue, TorchEngine.Placement.isDevice(s) else {
                throw SpecMessage("\(what): expected cpu, cuda or cuda:N, found \(v.canonical)")
            }
            return s
        }
        guard let json else { return TorchEngine.Placement("cuda") }
        if json.stringValue != nil { return TorchEngine.Placement(try device(json, "device")) }
        guard let members = json.objectMembers, !members.isEmpty else {
            throw SpecMessage("expected a device (cpu, cuda, cuda:N) or a map from model names to devices, found \(json.canonical)")
        }
        var byModel: [String: String] = [:]
        for (name, v) in members { byModel[name] = try device(v, "device of '\(name)'") }
        return TorchEngine.Placement(byModel.removeValue(forKey: "default") ?? "cuda", byModel: byModel)
    }

    /// What is missing before anything runs: the torch engine's worker program.
    func preflight() -> [String] {
        guard kind == .torch else { return [] }
        return TorchWorkerLocation.script() == nil ? [TorchWorkerLocation.notFound] : []
    }

    /// The engine, started: the CPU engine, or the torch worker (its log in the stage's work
    /// area) after its own preflight (torch, transformers, the GPUs named); what it runs on
    /// goes into the run record. `candidates`: the spec's candidate keys → the names their
    /// models are loaded under, so that a device map may name either.
    public func makeEngine(_ context: StageContext, candidates: [String: String] = [:]) throws -> any Engine {
        switch kind {
        case .cpu:
            if device != nil || dtype != nil { context.log("the cpu engine runs in float32 on this machine's CPUs: device and dtype (the torch engine's) are ignored") }
            let engine = CPUEngine(threads: context.threads)
            context.recordEnvironment("engine", .object([("name", "cpu")]))
            return engine
        case .torch:
            var placement = try placement(device)
            for (key, name) in candidates { if let d = placement.byModel[key] { placement.byModel[name] = d } }
            guard let script = TorchWorkerLocation.script() else { throw EngineError(TorchWorkerLocation.notFound) }
            let python = ProcessInfo.processInfo.environment["HAPS_TORCH_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
            try FileIO.makeDirectory(context.workDirectory)
            let engine = try TorchEngine(python: python, script: script, log: context.workDirectory + "/torch-worker.log",
                                         placement: placement, dtype: (dtype ?? .float32).rawValue)
            let info = engine.info
            context.recordEnvironment("engine", .object([
                ("name", .string(info.name)), ("devices", .array(info.devices.map(JSONValue.string))),
                ("versions", .object(info.versions.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))]))
            context.log("torch engine: torch \(info.versions["torch"] ?? "?"), transformers \(info.versions["transformers"] ?? "?")"
                        + (placement.usesCUDA ? ", CUDA \(info.versions["cuda"] ?? "?") on \(info.devices.joined(separator: ", "))" : ", on the CPU")
                        + ", \((dtype ?? .float32).rawValue)")
            return engine
        }
    }
}

/// A message for a spec problem at a known path.
struct SpecMessage: Error { var message: String; init(_ m: String) { message = m } }
