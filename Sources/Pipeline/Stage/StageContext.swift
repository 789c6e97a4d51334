#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Everything a running stage receives: resolved inputs, where to write its output, and the
/// services for long work (journal, checkpoints, progress, cancellation, seeded randomness).
public final class StageContext: @unchecked Sendable {
    public let pipeline: String
    public let stage: String
    public let key: Digest
    /// Resolved inputs by port name.
    public let inputs: [String: InputArtifact]
    /// Write the stage's output files here; the directory is ingested when `run` returns.
    public let outputDirectory: String
    /// Persistent scratch space for this key; it survives interruptions and is removed on success.
    public let workDirectory: String
    /// The spec's resources this stage declared, by name ("models.llama" → its JSON).
    public let resources: [String: JSONValue]
    public let progress: ProgressReporter
    public let cancellation: CancellationToken
    /// The seed of this stage (the stage's or the spec's `seed`); part of the key.
    public let seed: UInt64
    /// The directory relative paths in the spec were resolved against.
    public let baseDirectory: String
    /// Suggested number of threads for the stage's own parallel work (its CPU slots).
    public let threads: Int
    /// The store, for recorded facts such as memoised model calls (`Store.memo`).
    public let store: Store
    private let logSink: @Sendable (String) -> Void

    public init(pipeline: String, stage: String, key: Digest, inputs: [String: InputArtifact], outputDirectory: String,
                workDirectory: String, resources: [String: JSONValue], progress: ProgressReporter,
                cancellation: CancellationToken, seed: UInt64, baseDirectory: String, threads: Int, store: Store,
                log: @escaping @Sendable (String) -> Void) {
        self.pipeline = pipeline; self.stage = stage; self.key = key; self.inputs = inputs
        self.outputDirectory = outputDirectory; self.workDirectory = workDirectory; self.resources = resources
        self.progress = progress; self.cancellation = cancellation; self.seed = seed
        self.baseDirectory = baseDirectory; self.threads = threads; self.store = store; self.logSink = log
    }

    private let environmentLock = Lock()
    private var recordedEnvironment: [String: JSONValue] = [:]

    /// Records what the stage ran on beyond the key (an engine's name, its library versions,
    /// the GPUs): it goes into the run record's entry for the stage (`runs/`), not the key
    /// nor the output, so that a result's bytes do not depend on it.
    public func recordEnvironment(_ name: String, _ value: JSONValue) {
        environmentLock.withLock { recordedEnvironment[name] = value }
    }

    /// What `recordEnvironment` recorded.
    public var environment: [String: JSONValue] { environmentLock.withLock { recordedEnvironment } }

    /// A fresh generator seeded from the stage seed (the same sequence on every run).
    public func makeRandom() -> SeededRandom { SeededRandom(seed: seed) }

    /// An item journal in the work area; finished items survive interruptions.
    public func journal(_ name: String = "items") throws -> Journal {
        try Journal(path: "\(workDirectory)/journal/\(name).log")
    }

    /// The file in a work area where the process groups of a stage's programs are recorded
    /// (`Subprocess.run(groupRecord:)`), so that a resumed run stops any that survived its driver.
    public static func processRecord(_ workDirectory: String) -> String { workDirectory + "/processes" }

    /// Checkpoints in the work area; survive interruptions.
    public var checkpoints: CheckpointStore { CheckpointStore(directory: "\(workDirectory)/checkpoints") }

    /// A line for the user (shown under the stage's progress, and kept in the run log).
    public func log(_ message: String) { logSink(message) }

    /// Throws `CancellationError` when the run is being stopped; call between items.
    public func checkCancellation() throws { if cancellation.isCancelled { throw CancellationError() } }
}

/// Set once when the run is asked to stop (Ctrl-C or a failure under fail-fast).
public final class CancellationToken: @unchecked Sendable {
    private let lock = Lock()
    private var cancelled = false
    private var handlers: [@Sendable () -> Void] = []
    public init() {}
    public var isCancelled: Bool { lock.withLock { cancelled } }
    public func cancel() {
        let hs: [@Sendable () -> Void] = lock.withLock {
            if cancelled { return [] }
            cancelled = true
            defer { handlers = [] }
            return handlers
        }
        for h in hs { h() }
    }
    /// Runs `handler` on cancellation (at once if already cancelled).
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        let now: Bool = lock.withLock {
            if cancelled { return true }
            handlers.append(handler); return false
        }
        if now { handler() }
    }
}

/// Thrown by stages that stop because the run was cancelled.
public struct CancellationError: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "cancelled" }
}

/// A deterministic generator (SplitMix64) for stages' random choices.
///
/// For the reference's own random choices use the Python-compatible generator instead.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    /// The whole state: save it in a checkpoint and restore it with `init(state:)`.
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public init(state: UInt64) { self.state = state }
    /// An independent stream per (`seed`, `stream`), e.g. one per training step. Seeds that
    /// differ by multiples of the increment (`seed + step · 0x9E3779B97F4A7C15`) would give
    /// the same sequence shifted by `step`, so consecutive steps would share all but one draw;
    /// here the stream number is mixed first.
    public init(seed: UInt64, stream: UInt64) {
        var mixer = SeededRandom(seed: stream ^ 0xD1B5_4A32_D192_ED03)
        state = seed ^ mixer.next()
    }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
