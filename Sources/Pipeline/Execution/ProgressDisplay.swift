#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Draws a run's progress: live per-stage bars on a terminal, or plain timestamped lines
/// when the output is a file or a pipe (CI logs, `| tee`).
///
///     ✓ sample_train   cached                      0.0s
///     ▸ score_valid    [#########.......]  57/100  12.3 items/s  ETA 4s
public final class ProgressDisplay: RunObserver, @unchecked Sendable {
    private let lock = Lock()
    private let interactive: Bool
    private let output: Int32
    private var active: [(name: String, progress: ProgressReporter)] = []
    private var drawnLines = 0
    private var timer: (any DispatchSourceTimer)?
    private var lastPlain: [String: Date] = [:]
    private let quiet: Bool
    private var firstStart: (@Sendable () -> Void)?

    /// `interactive` nil: decide from whether stderr is a terminal (and TERM is not "dumb").
    /// `onFirstStart` runs when the first stage starts running (not for cache hits): a no-op run
    /// sets up no timers and no signal handling.
    public init(interactive: Bool? = nil, quiet: Bool = false, output: Int32 = 2,
                onFirstStart: (@Sendable () -> Void)? = nil) {
        let tty = isatty(output) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
        self.interactive = interactive ?? tty
        self.output = output
        self.quiet = quiet
        self.firstStart = onFirstStart
    }

    /// Must hold `lock`. Starts the redraw (terminal) or progress-line (plain) timer.
    private func startTimerLocked() {
        guard timer == nil else { return }
        if self.interactive {
            let t = DispatchSource.makeTimerSource(queue: ControlEvents.queue)
            t.schedule(deadline: .now() + 0.2, repeating: 0.2)
            t.setEventHandler { [weak self] in self?.redraw() }
            t.resume()
            timer = t
        } else {
            let t = DispatchSource.makeTimerSource(queue: ControlEvents.queue)
            t.schedule(deadline: .now() + 10, repeating: 10)
            t.setEventHandler { [weak self] in self?.plainProgress() }
            t.resume()
            timer = t
        }
    }

    deinit { timer?.cancel() }

    private func write(_ s: String) { try? FileIO.writeAll(output, Array(s.utf8), path: "output") }

    private func plainLine(_ s: String) -> String { "[\(Format.clock())] \(s)\n" }

    public func stageStarted(_ stage: String, reasons: [String], progress: ProgressReporter) {
        let first: (@Sendable () -> Void)? = lock.withLock { defer { firstStart = nil }; return firstStart }
        first?()
        lock.withLock {
            startTimerLocked()
            active.append((stage, progress))
            let why = reasons.first.map { " (\($0)\(reasons.count > 1 ? "; +\(reasons.count - 1) more" : ""))" } ?? ""
            emitLocked(interactive ? "▸ \(stage) running\(why)" : "start  \(stage)\(why)")
        }
    }

    public func stageFinished(_ r: StageResult) {
        lock.withLock {
            active.removeAll { $0.name == r.stage }
            if quiet && r.outcome == .cached { return }
            let secs = Format.fixed(r.seconds, 1) + "s"
            let out = r.output.map { " → \($0.short)" } ?? ""
            let line: String
            switch r.outcome {
            case .cached: line = "✓ \(pad(r.stage)) cached\(out)"
            case .ran: line = "✓ \(pad(r.stage)) ran in \(secs)\(out)"
            case .failed(let m): line = "✗ \(pad(r.stage)) failed after \(secs):\n" + m.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
            case .skipped(let m): line = "- \(pad(r.stage)) skipped: \(m)"
            case .cancelled: line = "■ \(pad(r.stage)) interrupted after \(secs) (finished items are kept; rerun to resume)"
            }
            emitLocked(line)
        }
    }

    public func message(_ stage: String?, _ text: String) {
        lock.withLock { emitLocked(stage.map { "  \($0): \(text)" } ?? text) }
    }

    public func runFinished() {
        timer?.cancel(); timer = nil
        lock.withLock { clearLocked() }
    }

    private func pad(_ s: String) -> String { s.count >= 16 ? s : s + String(repeating: " ", count: 16 - s.count) }

    /// Must hold `lock`.
    private func emitLocked(_ line: String) {
        if interactive {
            clearLocked()
            write(line + "\n")
            drawLocked()
        } else {
            write(plainLine(line))
        }
    }

    private func clearLocked() {
        if drawnLines > 0 { write("\u{1B}[\(drawnLines)A\u{1B}[J"); drawnLines = 0 }
    }

    private func drawLocked() {
        var lines: [String] = []
        for (name, p) in active { lines.append("▸ \(pad(name)) " + ProgressDisplay.describe(p.snapshot, bar: true)) }
        if !lines.isEmpty { write(lines.joined(separator: "\n") + "\n") }
        drawnLines = lines.count
    }

    private func redraw() { lock.withLock { clearLocked(); drawLocked() } }

    private func plainProgress() {
        lock.withLock {
            for (name, p) in active { write(plainLine("       \(name): " + ProgressDisplay.describe(p.snapshot, bar: false))) }
        }
    }

    /// "[#####.....]  57/100 items  12.3/s  ETA 4s  status"
    public static func describe(_ s: ProgressReporter.Snapshot, bar: Bool) -> String {
        var parts: [String] = []
        if let total = s.total, total > 0 {
            if bar {
                let n = 20, filled = min(n, s.completed * n / total)
                parts.append("[" + String(repeating: "#", count: filled) + String(repeating: ".", count: n - filled) + "]")
            }
            parts.append("\(s.completed)/\(total) \(s.unit)")
        } else if s.completed > 0 {
            parts.append("\(s.completed) \(s.unit)")
        }
        if let r = s.rate { parts.append(Format.fixed(r, 1) + "/s") }
        if let eta = s.eta { parts.append("ETA " + formatDuration(eta)) }
        parts.append(formatDuration(s.elapsed) + " elapsed")
        if !s.status.isEmpty { parts.append(String(s.status.prefix(60))) }
        return parts.joined(separator: "  ")
    }

    public static func formatDuration(_ t: Double) -> String { Format.duration(t) }
}
