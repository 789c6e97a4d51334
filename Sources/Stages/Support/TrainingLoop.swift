#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
public import NN
public import Pipeline

/// Something a training loop can checkpoint and resume: its step counter and its whole state
/// (weights, optimizer moments) as bytes, or, when `checkpointsAsFiles` (a state of
/// gigabytes that the torch engine's worker writes itself), as files in a directory.
public protocol Checkpointable: AnyObject {
    var step: Int { get }
    func state() throws -> [UInt8]
    func restore(_ bytes: [UInt8]) throws
    /// Whether checkpoints are the files `save(into:)` writes rather than `state()`'s bytes.
    var checkpointsAsFiles: Bool { get }
    func save(into directory: String) throws
    func restore(from directory: String) throws
}

extension Checkpointable {
    public var checkpointsAsFiles: Bool { false }
    public func save(into directory: String) throws { try FileIO.writeAtomically(try state(), to: directory + "/state.bin", sync: false) }
    public func restore(from directory: String) throws { try restore(try CheckpointStore.State.directory(directory).bytes()) }
}

extension DecoderTrainer: Checkpointable {}

/// The one training loop of the training stages (`train-agent`, `train-decoder`, and the
/// router and RL stages built on them): resume from the stage's latest sound checkpoint (each
/// damaged newer one is named in the log), one step at a time until `steps`, cancellation
/// between steps, each step's loss journaled (a resumed run keeps the losses of the steps it
/// does not redo), a checkpoint every `checkpointEvery` steps and at the end, and the progress
/// line (loss, tokens/s; the display adds the ETA).
///
///     let loop = TrainingLoop(steps: p.steps, checkpointEvery: p.checkpoint_every)
///     let losses = try loop.run(trainer, context) { step in
///         let batch = streams.weighted(step: step, size: 8)
///         return .init(loss: Double(try trainer.train(batch)), tokens: batch.reduce(0) { $0 + $1.count })
///     }
///     try losses.write(to: context.outputDirectory + "/losses.jsonl")
public struct TrainingLoop {
    public var steps: Int
    public var checkpointEvery: Int

    public init(steps: Int, checkpointEvery: Int) {
        self.steps = steps; self.checkpointEvery = max(1, checkpointEvery)
    }

    /// What one step reports.
    public struct StepResult {
        public var loss: Double
        /// Tokens the step trained on (for the tokens/s figure).
        public var tokens: Int
        public init(loss: Double, tokens: Int) { self.loss = loss; self.tokens = tokens }
    }

    /// Runs `step(n)` for every step the trainer has not done yet; `step` must advance the
    /// trainer's step counter by one. `status(n)`, when given, leads the progress line
    /// ("epoch 2/10").
    public func run(_ trainer: some Checkpointable, _ context: StageContext, status: ((Int) -> String)? = nil,
                    step: (Int) throws -> StepResult) throws -> LossLog {
        let journal = try context.journal("losses")
        var damaged = 0
        let newest = context.checkpoints.latestState { path, problem in
            damaged += 1
            context.log("checkpoint \(path) is damaged (\(problem)): skipped")
        }
        if let (at, state) = newest {
            switch state {
            case .bytes(let bytes): try trainer.restore(bytes)
            case .directory(let directory): try trainer.restore(from: directory)
            }
            context.log("resuming from the checkpoint of step \(at)")
        } else if damaged > 0 {
            context.log("no sound checkpoint: training from the start")
        }
        context.progress.setTotal(steps, unit: "steps")
        context.progress.resume(completed: trainer.step)
        let started = Date()
        var tokensSeen = 0
        while trainer.step < steps {
            try context.checkCancellation()
            let n = trainer.step
            let r = try step(n)
            precondition(trainer.step == n + 1, "a training step must advance the step counter by one (\(n) → \(trainer.step))")
            tokensSeen += r.tokens
            if !journal.contains("s\(n)") { try journal.append(key: "s\(n)", json: .number(r.loss)) }
            let elapsed = Date().timeIntervalSince(started)
            context.progress.advance()
            context.progress.setStatus((status.map { $0(n) + ", " } ?? "") + "loss \(Format.fixed(r.loss, 3))" + (elapsed > 0.5 && tokensSeen > 0 ? ", \(Int(Double(tokensSeen) / elapsed)) tokens/s" : ""))
            if trainer.step % checkpointEvery == 0 || trainer.step == steps { try save(trainer, context) }
        }
        return LossLog(losses: (0..<steps).map { journal.json("s\($0)")?.doubleValue })
    }

    private func save(_ trainer: some Checkpointable, _ context: StageContext) throws {
        if trainer.checkpointsAsFiles {
            try context.checkpoints.save(step: trainer.step) { directory in try trainer.save(into: directory) }
        } else {
            try context.checkpoints.save(step: trainer.step, state: try trainer.state())
        }
    }
}

extension TrainingLoop {
    /// The training stage's kept best weights (`<work area>/best`, a `SealedDirectory`: sealed
    /// as checkpoints are). Call it before opening the stage's journals: a damaged one (a
    /// flipped bit, a truncated or missing file, no seal) is reported with its path and what is
    /// wrong, and the stage's whole training state — checkpoints, journals and the kept weights —
    /// is removed, so that this run trains from the start and keeps its weights again (the same
    /// ones: training is deterministic). Damaged weights are never used.
    public static func keptWeights(_ context: StageContext) -> SealedDirectory {
        let best = SealedDirectory(path: context.workDirectory + "/best")
        guard let problem = best.problem() else { return best }
        context.log("the kept weights \(best.path) are damaged (\(problem)): they are not used; training again from the start to rebuild them")
        for part in ["checkpoints", "journal", "best", "best.tmp"] { FileIO.remove(context.workDirectory + "/" + part) }
        return best
    }
}

/// The loss of every step of a training run (nil for a step whose record is missing).
public struct LossLog: Sendable {
    public var losses: [Double?]

    /// `losses.jsonl`: `{"loss": ..., "step": ...}` a line.
    public var jsonLines: String {
        losses.enumerated().compactMap { s, l in
            l.map { JSONValue.object(["step": .number(Double(s)), "loss": .number($0)]).canonical + "\n" }
        }.joined()
    }

    /// "loss 5.123 → 1.234".
    public var summary: String {
        "loss \(Format.fixed(losses.first.flatMap { $0 } ?? .nan, 3)) → \(Format.fixed(losses.last.flatMap { $0 } ?? .nan, 3))"
    }
}

/// Seeded batch streams whose batch for a step depends only on (seed, step), so a resumed run
/// sees the same batches without saving a generator's state.
public struct BatchStreams: Sendable {
    public let seed: UInt64
    public init(seed: UInt64) { self.seed = seed }

    /// `size` indices drawn with replacement in proportion to `cumulative` weights (running
    /// sums), from an independent stream per step.
    public func weighted(step: Int, size: Int, cumulative: [Double]) -> [Int] {
        var rng = SeededRandom(seed: seed, stream: UInt64(step))
        let total = cumulative.last ?? 0
        return (0..<size).map { _ in
            let u = Double(rng.next() >> 11) / Double(1 << 53) * total
            var lo = 0, hi = cumulative.count - 1
            while lo < hi { let mid = (lo + hi) / 2; if cumulative[mid] > u { hi = mid } else { lo = mid + 1 } }
            return lo
        }
    }

    /// Epochs over `count` items: a seeded permutation per epoch, read in order.
    public func epochs(step: Int, size: Int, count: Int) -> [Int] {
        var orders: [Int: [Int]] = [:]
        return (0..<size).map { j in
            let position = step * size + j
            let epoch = position / count
            if orders[epoch] == nil { orders[epoch] = permutation(epoch: epoch, count: count) }
            return orders[epoch]![position % count]
        }
    }

    /// The order of `count` items in `epoch` (what `epochs` reads from).
    public func permutation(epoch: Int, count: Int) -> [Int] {
        var rng = SeededRandom(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        var order = Array(0..<count)
        order.shuffle(using: &rng)
        return order
    }
}

/// A learning-rate schedule as a parameter: warm-up then cosine or linear decay, or constant
/// (transformers' `get_*_schedule_with_warmup`).
public enum ScheduleKind: String, ParameterEnum {
    case cosine, linear, constant

    public func schedule(warmup: Int, total: Int) -> LearningRateSchedule {
        switch self {
        case .cosine: .cosine(warmup: warmup, total: total)
        case .linear: .linear(warmup: warmup, total: total)
        case .constant: .constant
        }
    }
}
