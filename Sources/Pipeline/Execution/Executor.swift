#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Options of one run.
public struct RunOptions: Sendable {
    /// CPU slots shared by running stages (`-j`).
    public var jobs: Int = RunOptions.cores
    /// Cores available to this process (cgroup quotas included); read once, it costs a few file reads.
    public static let cores = ProcessInfo.processInfo.activeProcessorCount
    /// Run every stage whose inputs succeeded, then report all failures (`--keep-going`).
    public var keepGoing = false
    /// Stages to recompute even when cached (`--force`).
    public var force: Set<String> = []
    /// Run only these stages and what they need (`--until`).
    public var until: [String] = []
    /// Read and verify every cached object instead of trusting unchanged files (`--verify`).
    public var verify = false
    /// What the run record says of the machine results depend on (the CPU model, the numeric
    /// library's kernels): the tool that links the numeric engine fills it in; it is called
    /// when the record is written, so a run that did no numeric work loads nothing for it.
    public var machine: @Sendable () -> [String: JSONValue] = { [:] }
    /// `--executor`: "local" or "slurm" over the spec's `executor` block; nil keeps the spec's.
    public var executor: String?
    /// The haps-pipe a Slurm job runs when the spec's `executor.command` does not say (the
    /// tool sets it to its own executable).
    public var jobCommand = "haps-pipe"
    /// The experiment this run belongs to (`Experiment`), with the overrides that make it;
    /// nil for runs that are not experiments (a Slurm job's, a sweep's).
    public var experiment: (name: String, overrides: [String])?
    public init() {}
}

/// Runs a validated pipeline on a store: the Dispatch-based DAG executor.
///
/// Ready stages run concurrently on Dispatch's global queue, bounded by `jobs` CPU slots and
/// the spec's named pools. Each stage: resolve input digests → key → action cache hit (cheap
/// integrity check) or, under the key's file lock, run → ingest output → record. Equal
/// outputs stop a cascade (early cutoff) because downstream keys use output digests.
public final class Executor: @unchecked Sendable {
    public let spec: PipelineSpec
    public let store: Store
    public let options: RunOptions
    public let cancellation: CancellationToken
    let observer: (any RunObserver)?
    /// Where stages run: here, or as Slurm jobs (`-j` then bounds the jobs in flight).
    public let mode: ExecutorKind

    private let lock = Lock()
    private enum State { case waiting, active, done }
    private var states: [String: State] = [:]
    private var results: [String: StageResult] = [:]
    private var recomputed = Set<String>()
    private var stopping = false
    /// Stages that must run, waiting for their CPU slots (spec order).
    private var queued: [Prepared] = []
    private let allDone = DispatchSemaphore(value: 0)
    private let slots: SlotPool
    private let selection: Set<String>
    private let runID: String

    public init(spec: PipelineSpec, store: Store, options: RunOptions, cancellation: CancellationToken = CancellationToken(),
                observer: (any RunObserver)? = nil) {
        self.spec = spec; self.store = store; self.options = options
        self.cancellation = cancellation; self.observer = observer
        slots = SlotPool(slots: options.jobs, pools: spec.pools)
        selection = Planner.selection(spec, until: options.until)
        runID = "\(Format.compactTimestamp(Date()))-\(spec.name)-\(getpid())"
        switch options.executor {
        case "slurm"?: if case .slurm = spec.executor { mode = spec.executor } else { mode = .slurm(SlurmSettings()) }
        case "local"?: mode = .local
        default: mode = spec.executor
        }
    }

    /// CPU slots a running stage holds: its CPUs here; one job slot under Slurm.
    private func slotCPUs(_ st: PlannedStageSpec) -> Int { mode == .local ? st.cpus : 1 }

    /// What the selected stages lack, by stage: external inputs that do not exist (a spec may
    /// name a path the user has yet to fetch): "stage 'x' reads input 'p' from PATH, which does
    /// not exist", and what a stage's type says it lacks (its `preflight`).
    public func missingInputsByStage() -> [(stage: String, lines: [String])] {
        spec.order.filter { selection.contains($0) }.compactMap { name in
            let stage = spec.stages[name]!
            let lines = stage.inputs.compactMap { input -> String? in
                guard case .path(let p) = input.source else { return nil }
                let port = stage.ports.inputs.first { $0.name == input.port }
                guard FileIO.exists(p) else {
                    let help = port?.help ?? ""
                    return "stage '\(name)' reads input '\(input.port)' from \(p), which does not exist" + (help.isEmpty ? "" : " (\(help))")
                }
                guard let check = port?.check, let problem = checkInput(p, kind: input.kind, check) else { return nil }
                return "stage '\(name)' reads input '\(input.port)' from \(p): \(problem)"
            } + stage.definition.preflightOf(stage.params, stage.resources, Set(stage.inputs.map(\.port))).map { "stage '\(name)': \($0)" }
            return lines.isEmpty ? nil : (name, lines)
        }
    }

    public func missingInputs() -> [String] { missingInputsByStage().flatMap(\.lines) }

    /// Runs a port's check on a user's file unless it passed on the same content before;
    /// what is wrong, or nil.
    private func checkInput(_ path: String, kind: ArtifactKind, _ check: InputCheck) -> String? {
        let digest = try? store.importExternal(path: path, kind: kind, snapshot: false)
        if let digest, store.inputCheckPassed(check.name, on: digest) { return nil }
        do { try check.run(path) } catch { return Executor.describe(error) }
        // Remembered only for the content checked (not if the file changed meanwhile).
        if let digest, (try? store.importExternal(path: path, kind: kind, snapshot: false)) == digest {
            store.recordInputCheckPassed(check.name, on: digest)
        }
        return nil
    }

    /// Runs the selected stages. Stops before starting anything when an external input of one
    /// of them is missing (`missingInputs`), unless `keepGoing`: then those stages and the ones
    /// after them are skipped, saying why, and the rest run.
    public func run() throws -> RunSummary {
        let missing = missingInputsByStage()
        if !missing.isEmpty && !options.keepGoing { throw MissingInputs(lines: missing.flatMap(\.lines)) }
        let started = Date()
        let storeLock = try store.lockStore(.shared)
        defer { storeLock?.unlock() }
        cancellation.onCancel { [weak self] in self?.stop() }
        let (blocked, nothingToDo) = lock.withLock {
            for s in spec.order where selection.contains(s) { states[s] = .waiting }
            let blocked = missing.map { m in
                let why = "missing input: " + m.lines.joined(separator: "; ")
                return finish(m.stage, StageResult(stage: m.stage, outcome: .skipped(why), seconds: 0, reasons: [why]))
            }
            return (blocked, states.values.allSatisfy { $0 == .done })
        }
        for r in blocked { observer?.stageFinished(r) }
        if nothingToDo { allDone.signal() } else { scheduleReady() }
        allDone.wait()
        observer?.runFinished()
        let summary = RunSummary(pipeline: spec.name,
                                 results: spec.order.compactMap { results[$0] },
                                 interrupted: cancellation.isCancelled,
                                 seconds: Date().timeIntervalSince(started), runID: runID)
        try? store.writeRunRecord(runRecord(summary, started: started), id: runID)
        return summary
    }

    private func stop() {
        lock.withLock { stopping = true }
        scheduleReady()
    }

    /// Starts every waiting stage whose inputs are done and skips those whose inputs failed.
    /// Cache hits are settled right here, on the calling thread (a no-op run starts no
    /// thread per stage); stages that must run wait in `queued` until their CPU slots are
    /// free, and only then get a thread of their own (a large sweep parks no threads).
    /// Observers are told outside the lock.
    private func scheduleReady() {
        while true {
            var launch: [String] = []
            var finished = false
            var skipped: [StageResult] = []
            lock.withLock {
                var changed = true
                while changed {
                    changed = false
                    for name in spec.order where states[name] == .waiting {
                        let deps = spec.stages[name]!.dependencies
                        if let bad = deps.first(where: { results[$0].map { !$0.outcome.succeeded } ?? false }) {
                            let why = "input stage '\(bad)' \(results[bad]!.outcome.label)"
                            skipped.append(finish(name, StageResult(stage: name, outcome: .skipped(why), seconds: 0, reasons: [why])))
                            changed = true
                        } else if stopping {
                            skipped.append(finish(name, StageResult(stage: name, outcome: .skipped("run stopped before it started"), seconds: 0, reasons: [])))
                            changed = true
                        } else if deps.allSatisfy({ results[$0]?.outcome.succeeded ?? false }) {
                            states[name] = .active
                            launch.append(name)
                        }
                    }
                }
                finished = !states.isEmpty && states.values.allSatisfy { $0 == .done }
            }
            for r in skipped { observer?.stageFinished(r) }
            if launch.isEmpty {
                launchQueued()
                if finished { allDone.signal() }
                return
            }
            for name in launch {
                switch prepare(name) {
                case .settled(let result): record(result)
                case .mustRun(let prepared): lock.withLock { queued.append(prepared) }
                }
            }
        }
    }

    /// Starts queued stages, in spec order, as far as their CPU slots and pools are
    /// free (taken here, before a thread is started); when the run is stopping, skips them.
    private func launchQueued() {
        var start: [Prepared] = [], dropped: [Prepared] = []
        lock.withLock {
            if stopping { dropped = queued; queued = []; return }
            var i = 0
            while i < queued.count {
                let st = spec.stages[queued[i].name]!
                if slots.tryAcquire(cpus: slotCPUs(st), pool: st.pool) { start.append(queued.remove(at: i)) } else { i += 1 }
            }
        }
        // Each on a thread of its own, not Dispatch's pool: a stage computes for minutes, and the
        // pool (about a thread a core) is left to short work (ControlEvents).
        for p in start { Threads.spawn(count: 1, stackSize: 8 << 20) { _ in self.execute(p) }.detach() }
        for p in dropped {
            complete(StageResult(stage: p.name, outcome: .skipped("run stopped before it started"), key: p.key.digest, seconds: 0, reasons: p.reasons))
        }
    }

    /// Must hold `lock`; returns the result for the caller to tell the observer once unlocked.
    private func finish(_ name: String, _ result: StageResult) -> StageResult {
        states[name] = .done
        results[name] = result
        return result
    }

    private func complete(_ result: StageResult) {
        record(result)
        scheduleReady()
    }

    /// Records a stage's result (and stops scheduling on a failure under fail-fast).
    private func record(_ result: StageResult) {
        var failFast = false
        lock.withLock {
            _ = finish(result.stage, result)
            if case .failed = result.outcome, !options.keepGoing, !stopping { stopping = true; failFast = true }
        }
        observer?.stageFinished(result)
        if failFast {
            observer?.message(nil, "stage '\(result.stage)' failed; not starting further stages (use --keep-going to run everything that does not depend on it)")
        }
    }

    /// An input artifact of `name` (from `producer`) is damaged: recompute the producer, then `name`.
    private func recompute(_ producer: String, for name: String) -> Bool {
        lock.withLock {
            guard !recomputed.contains(producer), let old = results[producer], let key = old.key else { return false }
            recomputed.insert(producer)
            store.removeAction(key)
            states[producer] = .waiting
            results[producer] = nil
            states[name] = .waiting
            return true
        }
    }

    /// A stage whose key is known and which must run.
    struct Prepared {
        var name: String
        var key: StageKey
        var digests: [String: Digest]
        var previous: StageRef?
        var reasons: [String]
        var forced: Bool
        /// When it started: hashing its inputs, then (from `execute`) running, not counting the
        /// time it waited in the queue for CPU slots.
        var started: Date
        var preparedIn: TimeInterval = 0
    }

    private enum Preparation {
        case settled(StageResult)
        case mustRun(Prepared)
    }

    /// Input digests, then the planner's decision (`Planner.decide`, with the cache entry's
    /// integrity checked): a hit settles the stage at once.
    private func prepare(_ name: String) -> Preparation {
        let st = spec.stages[name]!
        let t0 = Date()
        do {
            var digests: [String: Digest] = [:]
            for input in st.inputs {
                switch input.source {
                case .stage(let s): digests[input.port] = lock.withLock { results[s]!.output! }
                case .path(let p): digests[input.port] = try store.importExternal(path: p, kind: input.kind, rehash: options.verify)
                case .artifact(let d): _ = try store.manifest(d); digests[input.port] = d
                }
            }
            var damaged: [String] = []
            var previous: StageRef?
            let forced = options.force.contains(name)
            let decision = Planner.decide(st, digests: digests, forced: forced, action: { checkedHit($0, reasons: &damaged) },
                                          previous: { previous = store.ref(pipeline: spec.name, stage: name); return previous })
            if let hit = decision.hit {
                return .settled(cachedResult(name, key: decision.key, hit: hit, previous: store.ref(pipeline: spec.name, stage: name), started: t0))
            }
            let reasons = !damaged.isEmpty && decision.reasons == ["no cached result for this key"] ? damaged : damaged + decision.reasons
            return .mustRun(Prepared(name: name, key: decision.key, digests: digests, previous: previous, reasons: reasons,
                                     forced: forced, started: t0, preparedIn: Date().timeIntervalSince(t0)))
        } catch {
            return .settled(StageResult(stage: name, outcome: .failed(Executor.describe(error)), seconds: Date().timeIntervalSince(t0), reasons: []))
        }
    }

    /// Runs a prepared stage on a worker thread (its slots already taken), gives the slots
    /// back, then records the result and schedules what it made ready.
    private func execute(_ prepared: Prepared) {
        var p = prepared
        p.started = Date().addingTimeInterval(-p.preparedIn)  // a stage's time is not its wait for slots
        let st = spec.stages[p.name]!
        let result: StageResult?
        switch mode {
        case .local: result = run(p)
        case .slurm(let settings): result = runAsJob(p, settings: settings)
        }
        slots.release(cpus: slotCPUs(st), pool: st.pool)
        if let result { complete(result) } else { scheduleReady() }
    }

    /// The key's lock, inputs, `run`, store. Nil when a damaged input sent its producer back to
    /// be recomputed (the stage waits again).
    private func run(_ p: Prepared) -> StageResult? {
        let name = p.name, key = p.key, digests = p.digests, previous = p.previous, forced = p.forced, t0 = p.started
        var reasons = p.reasons
        let st = spec.stages[name]!
        var inputs: [String: InputArtifact] = [:]
        do {
            // The key's lock (another process may be computing it).
            var keyLock = try store.lockKey(key.digest, wait: false)
            if keyLock == nil {
                observer?.message(name, "waiting for another haps-pipe process that is computing this stage (key \(key.digest.short))")
                keyLock = try store.lockKey(key.digest)
                if !forced, let hit = checkedHit(key.digest, reasons: &reasons) {
                    return cachedResult(name, key: key, hit: hit, previous: previous, started: t0)
                }
            }
            defer { keyLock?.unlock() }
            if cancellation.isCancelled {
                return StageResult(stage: name, outcome: .skipped("run stopped before it started"), key: key.digest, seconds: 0, reasons: reasons)
            }

            // 4. Inputs on disk (verified), then run.
            for input in st.inputs {
                let d = digests[input.port]!
                switch input.source {
                case .path, .artifact:  // the snapshot taken when the key was computed, not the user's file
                    inputs[input.port] = InputArtifact(digest: d, manifest: try store.manifest(d), directory: try store.materialize(d))
                case .stage(let producer):
                    do {
                        let dir = try store.materialize(d)
                        inputs[input.port] = InputArtifact(digest: d, manifest: try store.manifest(d), directory: dir)
                    } catch let e as StoreError where e.code == .corruptObject || e.code == .missingObject {
                        observer?.message(name, "input '\(input.port)' from '\(producer)' is damaged (\(e.message)); recomputing '\(producer)'")
                        if recompute(producer, for: name) {
                            keyLock?.unlock()
                            return nil
                        }
                        throw e
                    }
                }
            }
            let progress = ProgressReporter()
            observer?.stageStarted(name, reasons: reasons, progress: progress)
            let work = store.workDirectory(key.digest)
            // A program of an earlier, killed run of this stage may still be running: stop it
            // before the stage's directories are touched, so that nothing else writes there.
            let survivors = Subprocess.stopRecordedGroups(StageContext.processRecord(work))
            if survivors > 0 { observer?.message(name, "stopped \(survivors) process group(s) left running by an earlier, interrupted run of this stage") }
            let out = work + "/out"
            FileIO.remove(out)
            try FileIO.makeDirectory(out)
            let context = StageContext(
                pipeline: spec.name, stage: name, key: key.digest, inputs: inputs, outputDirectory: out,
                workDirectory: work, resources: st.resources, progress: progress, cancellation: cancellation,
                seed: UInt64(bitPattern: Int64(st.seed)), baseDirectory: spec.baseDirectory,
                threads: min(max(1, st.cpus), options.jobs), store: store,
                log: { [weak self] line in self?.observer?.message(name, line) })
            let runStart = Date()
            do {
                try st.definition.runner(st.params, context)
            } catch is CancellationError {
                return StageResult(stage: name, outcome: .cancelled, key: key.digest, seconds: Date().timeIntervalSince(t0), reasons: reasons)
            }
            if cancellation.isCancelled {
                return StageResult(stage: name, outcome: .cancelled, key: key.digest, seconds: Date().timeIntervalSince(t0), reasons: reasons)
            }
            // Inputs are read-only: a stage that changed one fails, and the damaged copy is dropped.
            for (port, input) in inputs.sorted(by: { $0.key < $1.key }) {
                guard let change = store.checkTreeAfterUse(input.digest) else { continue }
                throw StageInputChanged(port: port, change: change)
            }
            let output = try store.ingest(directory: out, kind: st.ports.output)
            let seconds = Date().timeIntervalSince(runStart)
            let entry = ActionEntry(key: key.digest, output: output, kind: st.ports.output, payload: key.payload,
                                    createdAt: Date(), seconds: seconds, objectStats: try store.objectFingerprints(ofArtifact: output))
            try store.recordAction(entry)
            store.keepLog(of: key.digest)
            FileIO.remove(work)
            let cutoff = previous.map { $0.output == output && $0.key != key.digest } ?? false
            try store.writeRef(StageRef(key: key.digest, output: output, kind: st.ports.output, payload: key.payload,
                                        updatedAt: Date(), reason: reasons, ranAt: Date(), seconds: seconds),
                               pipeline: spec.name, stage: name)
            if cutoff { observer?.message(name, "output unchanged (\(output.short)): dependents stay cached") }
            return StageResult(stage: name, outcome: .ran, key: key.digest, output: output, kind: st.ports.output,
                               seconds: Date().timeIntervalSince(t0), reasons: reasons, environment: context.environment)
        } catch {
            let message = Executor.inUserTerms(Executor.describe(error), inputs: inputs, wiring: st.inputs)
            return StageResult(stage: name, outcome: .failed(message), key: key.digest, seconds: Date().timeIntervalSince(t0), reasons: [])
        }
    }

    /// A stage's error with the store's copies of its inputs (`trees/<digest>/...`) named as
    /// the user knows them: the input port and the user's own path, or the stage whose result
    /// it is. A stage reads the snapshot; the user edits their file.
    static func inUserTerms(_ message: String, inputs: [String: InputArtifact],
                            wiring: [(port: String, kind: ArtifactKind, source: InputSource)]) -> String {
        var text = message
        var named: [String] = []
        for input in wiring.sorted(by: { $0.port.count > $1.port.count }) {
            guard let tree = inputs[input.port]?.directory, text.contains(tree) else { continue }
            switch input.source {
            case .path(let p):
                let files = inputs[input.port]!.manifest.files
                if !FileIO.isDirectory(p), files.count == 1, let only = files.keys.first {
                    text = text.replacing(tree + "/" + only, with: p)
                }
                text = text.replacing(tree, with: p)
                named.append("input '\(input.port)' is \(p)")
            case .stage(let producer):
                text = text.replacing(tree, with: producer)
                named.append("input '\(input.port)' is the result of stage '\(producer)': haps-pipe show \(producer) --path")
            case .artifact(let d):
                text = text.replacing(tree, with: d.short)
                named.append("input '\(input.port)' is the stored result \(d.short): haps-pipe show \(d.short) --path")
            }
        }
        guard !named.isEmpty else { return text }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[0] += " (\(named.joined(separator: "; ")))"
        return lines.joined(separator: "\n")
    }

    /// A cache entry whose objects are intact, or nil (a damaged one is dropped, with a reason).
    private func checkedHit(_ key: Digest, reasons: inout [String]) -> ActionEntry? {
        guard let hit = store.action(key) else { return nil }
        switch store.checkIntact(hit, verifyAll: options.verify) {
        case .success: return hit
        case .failure(let e):
            store.removeAction(key)
            reasons.append("cached output was damaged: \(e.message)")
            return nil
        }
    }

    private func cachedResult(_ name: String, key: StageKey, hit: ActionEntry, previous: StageRef?, started: Date) -> StageResult {
        if previous?.key != key.digest || previous?.output != hit.output {
            try? store.writeRef(StageRef(key: key.digest, output: hit.output, kind: hit.kind, payload: key.payload, updatedAt: Date(),
                                         reason: ["reused the cached result of an earlier run with the same key"],
                                         ranAt: hit.createdAt, seconds: hit.seconds),
                                pipeline: spec.name, stage: name)
        }
        return StageResult(stage: name, outcome: .cached, key: key.digest, output: hit.output, kind: hit.kind,
                           seconds: Date().timeIntervalSince(started), reasons: [])
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? any CustomStringConvertible { return e.description }
        return "\(error)"
    }

    private func runRecord(_ s: RunSummary, started: Date) -> JSONValue {
        .object([
            "id": .string(s.runID), "pipeline": .string(s.pipeline), "spec": .string(spec.sourcePath),
            "started": .number(started.timeIntervalSince1970), "seconds": .number(s.seconds),
            "interrupted": .bool(s.interrupted), "executor": .string(mode.name),
            "experiment": options.experiment.map { .string($0.name) } ?? .null,
            "overrides": .array((options.experiment?.overrides ?? []).map(JSONValue.string)), "arguments": .array(CommandLine.arguments.map(JSONValue.string)),
            "machine": .object(options.machine().merging(["cores": .number(Double(RunOptions.cores)), "jobs": .number(Double(options.jobs))]) { a, _ in a }),
            "stages": .array(s.results.map { r in
                var o: [String: JSONValue] = ["stage": .string(r.stage), "outcome": .string(r.outcome.label),
                                              "seconds": .number((r.seconds * 1000).rounded() / 1000),
                                              "reasons": .array(r.reasons.map(JSONValue.string))]
                if let k = r.key { o["key"] = .string(k.hex) }
                if let d = r.output { o["output"] = .string(d.hex) }
                if let j = r.job { o["slurm_job"] = .string(j) }
                if !r.environment.isEmpty { o["environment"] = .object(r.environment.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }) }
                if case .failed(let m) = r.outcome { o["error"] = .string(m) }
                if case .skipped(let m) = r.outcome { o["error"] = .string(m) }
                return .object(o)
            }),
        ])
    }
}

/// A stage wrote into one of its inputs, which are read-only: its result is not kept.
struct StageInputChanged: Error, CustomStringConvertible {
    var port: String, change: String
    var description: String {
        "the stage changed its input '\(port)' (\(change)); inputs are read-only: write to {out} or {work} instead. Its result is not kept."
    }
}

/// External inputs a run needs that are not there; nothing was started.
public struct MissingInputs: Error, CustomStringConvertible {
    public var lines: [String]
    public var description: String {
        "nothing was run: " + (lines.count == 1 ? lines[0] : "\n  " + lines.joined(separator: "\n  "))
            + "\n(fetch what is missing, mend what is wrong; --keep-going runs every stage that does not need it)"
    }
}
