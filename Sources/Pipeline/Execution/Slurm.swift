#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Where a run's stages execute: in this process (`local`, the default) or as Slurm jobs on a
/// cluster that shares the store's filesystem (`slurm`).
public enum ExecutorKind: Sendable, Equatable {
    case local
    case slurm(SlurmSettings)

    public var name: String {
        switch self {
        case .local: return "local"
        case .slurm: return "slurm"
        }
    }
}

/// The spec's `executor` block for Slurm (every field optional): what each job asks `sbatch`
/// for unless its stage says otherwise (`cpus`, `mem`, `gpus`, `time` on a stage).
///
///     "executor": {"type": "slurm", "partition": "gpu", "account": "nlp", "time": "4:00:00",
///                  "mem": "16G", "sbatch_flags": ["--qos=normal"]}
public struct SlurmSettings: Sendable, Equatable {
    public var partition: String?
    public var account: String?
    /// Default time limit of a job, in Slurm's syntax ("30", "4:00:00", "1-00:00:00").
    public var time: String?
    /// Default memory of a job ("4G", "16000M").
    public var mem: String?
    /// Further `sbatch` options, passed as given.
    public var sbatchFlags: [String] = []
    /// How often the driver asks Slurm about its jobs.
    public var pollSeconds: Double = 2
    /// The haps-pipe that a job runs; by default this executable (which must be visible on the
    /// nodes, as the store must).
    public var command: String?
    public init() {}

    public static let fields = ["type", "partition", "account", "time", "mem", "sbatch_flags", "poll_seconds", "command"]

    /// Decodes the block; problems are reported with their JSON path.
    static func decode(_ v: JSONValue, at path: JSONPath, report: (JSONPath, String) -> Void) -> ExecutorKind {
        guard let members = v.objectMembers else {
            report(path, "expected an object such as {\"type\": \"slurm\", \"partition\": \"gpu\"}, found \(v.typeDescription)")
            return .local
        }
        for (k, _) in members where !fields.contains(k) {
            report(path.appending(k), "unknown field '\(k)'" + NearestName.hint(k, among: fields))
        }
        var s = SlurmSettings()
        func string(_ k: String) -> String? {
            guard let x = v[k] else { return nil }
            if let t = x.stringValue, !t.isEmpty { return t }
            report(path.appending(k), "expected a non-empty string, found \(x.typeDescription)")
            return nil
        }
        s.partition = string("partition"); s.account = string("account"); s.time = string("time")
        s.mem = string("mem"); s.command = string("command")
        if let f = v["sbatch_flags"] {
            if let items = f.arrayValue, items.allSatisfy({ $0.stringValue != nil }) { s.sbatchFlags = items.compactMap(\.stringValue) }
            else { report(path.appending("sbatch_flags"), "expected an array of strings such as [\"--qos=normal\"], found \(f.typeDescription)") }
        }
        if let p = v["poll_seconds"] {
            if let x = p.doubleValue, x > 0 { s.pollSeconds = x } else { report(path.appending("poll_seconds"), "expected a positive number, found \(p.typeDescription)") }
        }
        switch v["type"]?.stringValue {
        case "slurm"?, nil: return .slurm(s)
        case "local"?: return .local
        case let t?:
            report(path.appending("type"), "unknown executor '\(t)'" + NearestName.hint(t, among: ["local", "slurm"]) + " (local or slurm)")
            return .local
        }
    }
}

/// What a stage asks of the cluster beyond its CPUs: the spec's per-stage `mem`, `gpus`, `time`.
public struct JobResources: Sendable, Equatable {
    public var mem: String?
    public var gpus: Int = 0
    public var time: String?
    public init() {}
}

/// A Slurm job's state as `scontrol show job` gives it.
public struct SlurmJobState: Sendable, Equatable {
    public var state: String
    public var reason: String
    public var exitCode: String
    public var nodes: String
    /// How often Slurm requeued the job (preemption, `scontrol requeue`).
    public var restarts = 0

    /// Still queued or running: the driver keeps waiting (and adopts it after a restart).
    public var isActive: Bool {
        ["PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
         "SUSPENDED", "STAGE_OUT", "SIGNALING", "STOPPED", "RESV_DEL_HOLD"].contains(state)
    }
    public var isRunning: Bool { ["RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT"].contains(state) }
    /// Ended through no fault of the stage: a new job resumes it from its journal or checkpoint.
    public var isRetriable: Bool { ["PREEMPTED", "NODE_FAIL", "BOOT_FAIL"].contains(state) }

    /// Parses `scontrol show job -o ID`'s one line of KEY=VALUE fields.
    static func parse(_ line: String) -> SlurmJobState? {
        var fields: [String: String] = [:]
        for part in line.split(separator: " ") {
            guard let eq = part.firstIndex(of: "=") else { continue }
            let k = String(part[..<eq])
            if fields[k] == nil { fields[k] = String(part[part.index(after: eq)...]) }
        }
        guard let state = fields["JobState"] else { return nil }
        return SlurmJobState(state: state, reason: fields["Reason"] ?? "None", exitCode: fields["ExitCode"] ?? "?",
                             nodes: fields["NodeList"] ?? "", restarts: fields["Restarts"].flatMap { Int($0) } ?? 0)
    }
}

/// Slurm's command-line clients (`sbatch`, `scontrol`, `scancel`), as a driver uses them.
public struct SlurmClient: Sendable {
    public init() {}

    public struct Failure: Error, CustomStringConvertible {
        public var command: String, output: String
        public var description: String { "\(command) failed: \(output.split(whereSeparator: \.isNewline).joined(separator: " / "))" }
    }

    /// Runs a client command; its standard output, or a `Failure` with what it said.
    func call(_ arguments: [String]) throws -> String {
        let scratch = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/haps-slurm-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { FileIO.remove(scratch + ".out"); FileIO.remove(scratch + ".err") }
        let result: Subprocess.Result
        do {
            result = try Subprocess.run(arguments: arguments, environment: ProcessInfo.processInfo.environment,
                                        directory: FileManager.default.currentDirectoryPath, logPath: scratch + ".err",
                                        stdoutPath: scratch + ".out", cancellation: CancellationToken())
        } catch {
            throw Failure(command: arguments[0], output: "\(error) (is Slurm installed here? the driver needs sbatch, scontrol and scancel)")
        }
        let out = (try? FileIO.readString(scratch + ".out")) ?? ""
        guard result.exitCode == 0 else {
            throw Failure(command: arguments.joined(separator: " "), output: ((try? FileIO.readString(scratch + ".err")) ?? "") + out)
        }
        return out
    }

    /// Submits `script` and returns the job id.
    public func submit(script: String, options: [String]) throws -> String {
        let out = try call(["sbatch", "--parsable"] + options + [script])
        let id = out.split(separator: "\n").last.map { String($0.split(separator: ";")[0]) } ?? ""
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else { throw Failure(command: "sbatch", output: "unexpected answer '\(out)'") }
        return id
    }

    /// The job's state, or nil when Slurm no longer knows it (finished longer ago than MinJobAge).
    public func state(_ id: String) throws -> SlurmJobState? {
        do {
            return SlurmJobState.parse(try call(["scontrol", "show", "job", "-o", id]))
        } catch let f as Failure where f.output.contains("Invalid job id") {
            return nil
        }
    }

    public func cancel(_ id: String) { _ = try? call(["scancel", id]) }
}

/// A job that a driver submitted and has not yet seen end (`STORE/jobs/KEY/submitted`), as
/// `status` and `sweep status` show it.
public struct SlurmJobInFlight: Sendable {
    public var id: String
    public var pipeline: String
    public var stage: String
    public var key: Digest
    /// Slurm's word on it; nil when Slurm no longer knows the job or cannot be asked.
    public var state: SlurmJobState?

    public var label: String {
        guard let s = state else { return "Slurm job \(id) (Slurm does not know it now)" }
        return s.isRunning ? "running as Slurm job \(id) on \(s.nodes)" : "\(s.state.lowercased()) as Slurm job \(id) (\(s.reason))"
    }

    /// Every job recorded in the store, asking Slurm for each one's state.
    public static func all(in store: Store, client: SlurmClient = SlurmClient()) -> [SlurmJobInFlight] {
        let root = store.root + "/jobs"
        guard let keys = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        return keys.sorted().compactMap { hex in
            guard let key = Digest(hex: hex), let text = try? FileIO.readString("\(root)/\(hex)/submitted"),
                  let job = try? StageJob.load(directory: "\(root)/\(hex)") else { return nil }
            let id = String(text.filter { !$0.isWhitespace })
            return SlurmJobInFlight(id: id, pipeline: job.pipeline, stage: job.stage, key: key, state: try? client.state(id))
        }
    }
}
