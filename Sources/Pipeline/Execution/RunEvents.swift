#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// How a stage ended in a run.
public enum StageOutcome: Sendable, Equatable {
    case cached
    case ran
    case failed(String)
    /// Not run because an input failed or the run stopped.
    case skipped(String)
    case cancelled

    public var label: String {
        switch self {
        case .cached: return "cached"
        case .ran: return "ran"
        case .failed: return "failed"
        case .skipped: return "skipped"
        case .cancelled: return "cancelled"
        }
    }
    public var succeeded: Bool { self == .cached || self == .ran }
}

/// The result of one stage in a run.
public struct StageResult: Sendable {
    public var stage: String
    public var outcome: StageOutcome
    public var key: Digest?
    public var output: Digest?
    public var kind: ArtifactKind?
    public var seconds: Double
    public var reasons: [String]
    /// The Slurm job that ran it, under the Slurm executor.
    public var job: String? = nil
    /// What the stage recorded of what it ran on (`StageContext.recordEnvironment`).
    public var environment: [String: JSONValue] = [:]
}

/// Receives what happens during a run, to draw progress (terminal bars or log lines).
public protocol RunObserver: AnyObject, Sendable {
    func stageStarted(_ stage: String, reasons: [String], progress: ProgressReporter)
    func stageFinished(_ result: StageResult)
    func message(_ stage: String?, _ text: String)
    func runFinished()
}

/// The summary of a run: one result per selected stage, in pipeline order.
public struct RunSummary: Sendable {
    public var pipeline: String
    public var results: [StageResult]
    public var interrupted: Bool
    public var seconds: Double
    public var runID: String
    public var failures: [StageResult] { results.filter { if case .failed = $0.outcome { return true }; return false } }
    public var succeeded: Bool { !interrupted && results.allSatisfy(\.outcome.succeeded) }
    public func result(_ stage: String) -> StageResult? { results.first { $0.stage == stage } }
}
