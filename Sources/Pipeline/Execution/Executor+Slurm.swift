#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The Slurm executor's half of `Executor`: a prepared stage becomes one `sbatch` job that runs
/// `haps-pipe job DIR` on a node (the same stage, the same key, from the shared store); the
/// driver only waits for it, then reads the result from the store.
///
/// A job's directory (`STORE/jobs/KEY/`) holds job.json, job.sh, Slurm's log and the id of the
/// job in flight (`submitted`), so that a driver started again after kill -9 adopts the job
/// still queued or running instead of submitting the work twice.
extension Executor {
    /// Runs `p` as a Slurm job and waits for it: queued, running, then the result it committed,
    /// or its end (Slurm's state, exit code and the tail of its log). A job that ended through
    /// no fault of its own (preempted, node failure) is submitted again, up to three times, and
    /// resumes from the stage's journal or checkpoint.
    func runAsJob(_ p: Prepared, settings: SlurmSettings) -> StageResult {
        let st = spec.stages[p.name]!, key = p.key.digest
        let dir = StageJob.directory(store, key: key), client = SlurmClient()
        let progress = ProgressReporter()
        observer?.stageStarted(p.name, reasons: p.reasons, progress: progress)
        func failed(_ message: String, job: String? = nil) -> StageResult {
            StageResult(stage: p.name, outcome: .failed(message), key: key, seconds: Date().timeIntervalSince(p.started), reasons: p.reasons, job: job)
        }
        do {
            try FileIO.makeDirectory(dir)
            var id = adoptable(dir, client: client, stage: p.name)
            var submissions = 0
            while true {
                if id == nil {
                    if cancellation.isCancelled {
                        return StageResult(stage: p.name, outcome: .skipped("run stopped before it started"), key: key, seconds: 0, reasons: p.reasons)
                    }
                    id = try submit(p, st, dir: dir, settings: settings, client: client)
                    submissions += 1
                    observer?.message(p.name, "submitted as Slurm job \(id!)")
                }
                let job = id!
                guard let end = try waitFor(job, stage: p.name, client: client, settings: settings, progress: progress) else {
                    FileIO.remove(dir + "/submitted")
                    return StageResult(stage: p.name, outcome: .cancelled, key: key, seconds: Date().timeIntervalSince(p.started),
                                       reasons: p.reasons, job: job)
                }
                FileIO.remove(dir + "/submitted")
                if end.state == "COMPLETED" || end.state == "FORGOTTEN", let hit = store.action(key) {
                    for f in ["job.json", "job.sh"] { FileIO.remove(dir + "/" + f) }  // its logs stay until `gc`
                    return StageResult(stage: p.name, outcome: .ran, key: key, output: hit.output, kind: hit.kind,
                                       seconds: Date().timeIntervalSince(p.started), reasons: p.reasons, job: job)
                }
                let log = "\(dir)/slurm-\(job).log"
                if end.isRetriable && submissions < 3 {
                    observer?.message(p.name, "Slurm job \(job) ended \(end.state) on \(end.nodes); submitting it again (the stage resumes where it stopped)")
                    id = nil
                    continue
                }
                let what = end.state == "COMPLETED" || end.state == "FORGOTTEN"
                    ? "Slurm job \(job) ended (\(end.state)) without committing a result for key \(key.short)"
                    : "Slurm job \(job) ended \(end.state) (exit code \(end.exitCode), reason \(end.reason)\(end.nodes.isEmpty ? "" : ", on \(end.nodes)"))"
                return failed(what + "; the end of its log, \(log):\n" + Executor.tail(of: log, lines: 15), job: job)
            }
        } catch {
            return failed(Executor.describe(error))
        }
    }

    /// The id of a job an earlier driver submitted for this key that Slurm still has queued or
    /// running, or nil.
    private func adoptable(_ dir: String, client: SlurmClient, stage: String) -> String? {
        guard let text = try? FileIO.readString(dir + "/submitted") else { return nil }
        let id = String(text.filter { !$0.isWhitespace })
        guard !id.isEmpty, let s = try? client.state(id), s.isActive else {
            FileIO.remove(dir + "/submitted")
            return nil
        }
        observer?.message(stage, "adopting Slurm job \(id) (\(s.state.lowercased())), submitted by an earlier run of this stage")
        return id
    }

    /// Writes job.json and job.sh, submits, records the id; returns it.
    private func submit(_ p: Prepared, _ st: PlannedStageSpec, dir: String, settings: SlurmSettings, client: SlurmClient) throws -> String {
        let job = StageJob(spec: spec, stage: st, key: p.key.digest, digests: p.digests, forced: p.forced)
        try FileIO.writeAtomically(job.json.pretty + "\n", to: dir + "/job.json")
        let command = settings.command ?? options.jobCommand
        let storeRoot = FileIO.realPath(store.root) ?? store.root
        let script = """
            #!/bin/sh
            # haps-pipe's Slurm executor: stage '\(st.name)' of pipeline '\(spec.name)', key \(p.key.digest.hex)
            exec \(Executor.shellQuoted(command)) job \(Executor.shellQuoted(dir)) --store \(Executor.shellQuoted(storeRoot))

            """
        try FileIO.writeAtomically(Array(script.utf8), to: dir + "/job.sh", mode: 0o755)
        var options = ["--job-name=haps-\(spec.name)-\(st.name)", "--output=\(dir)/slurm-%j.log", "--chdir=\(spec.baseDirectory)",
                       "--cpus-per-task=\(st.cpus)"]
        if let mem = st.job.mem ?? settings.mem { options.append("--mem=\(mem)") }
        if st.job.gpus > 0 { options.append("--gres=gpu:\(st.job.gpus)") }
        if let time = st.job.time ?? settings.time { options.append("--time=\(time)") }
        if let partition = settings.partition { options.append("--partition=\(partition)") }
        if let account = settings.account { options.append("--account=\(account)") }
        let id = try client.submit(script: dir + "/job.sh", options: options + settings.sbatchFlags)
        try FileIO.writeAtomically(id + "\n", to: dir + "/submitted")
        return id
    }

    /// Polls the job until it is neither queued nor running and returns how it ended
    /// ("FORGOTTEN" when Slurm no longer knows it); nil when the run was cancelled, after
    /// cancelling the job. Queued and running show in the stage's progress line.
    private func waitFor(_ id: String, stage: String, client: SlurmClient, settings: SlurmSettings, progress: ProgressReporter) throws -> SlurmJobState? {
        let wake = DispatchSemaphore(value: 0)
        cancellation.onCancel { wake.signal() }
        var failures = 0, restarts = 0
        while true {
            if cancellation.isCancelled {
                client.cancel(id)
                return nil
            }
            do {
                guard let s = try client.state(id) else { return SlurmJobState(state: "FORGOTTEN", reason: "None", exitCode: "?", nodes: "") }
                failures = 0
                if s.restarts > restarts {
                    restarts = s.restarts
                    observer?.message(stage, "Slurm requeued job \(id) (restart \(restarts)); the stage resumes where it stopped")
                }
                if !s.isActive { return s }
                progress.setStatus(s.isRunning ? "Slurm job \(id) running on \(s.nodes)" : "Slurm job \(id) \(s.state.lowercased()) (\(s.reason))")
            } catch {
                failures += 1  // slurmctld restarting or busy: keep asking for a while
                if failures >= 30 { throw error }
            }
            _ = wake.wait(timeout: .now() + settings.pollSeconds)
        }
    }

    static func tail(of path: String, lines n: Int) -> String {
        guard let lines = FileIO.lastLines(of: path, count: n + 1) else { return "  (no log at \(path))" }
        return lines.map { "  " + $0 }.joined(separator: "\n")
    }

    static func shellQuoted(_ s: String) -> String { "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'" }
}
