public import LLM
public import NN
public import Pipeline

/// The router SFT's settings (the reference's sft.py flags), declared once: `sft-train`'s
/// parameters, and what `RouterSFT` reads.
public struct RouterSFTSettings: ParameterGroup {
    @Param("epochs over the SFT rows") var epochs = 10
    @Param("peak learning rate") var lr = 1e-5
    @Param("share of the steps spent warming up") var warmup_ratio = 0.03
    @Param("learning-rate schedule after warm-up") var schedule = ScheduleKind.cosine
    @Param("sequences per micro-batch") var batch_size = 8
    @Param("micro-batches summed into one optimiser step") var gradient_accumulation = 8
    @Param("AdamW weight decay (transformers' Trainer: 0)") var weight_decay = 0.0
    @Param("gradient clipping norm (0: none)") var max_grad_norm = 1.0
    public init() {}

    /// Rows an optimiser step takes.
    var rowsPerStep: Int { batch_size * gradient_accumulation }

    /// Optimiser steps an epoch of `rows` takes (0 without rows).
    func stepsPerEpoch(rows: Int) -> Int { (rows + rowsPerStep - 1) / rowsPerStep }

    func validate(at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        for (name, value) in [("epochs", epochs), ("batch_size", batch_size), ("gradient_accumulation", gradient_accumulation)] where value < 1 {
            problems.append(SpecProblem(path.appending(name), "expected a positive integer, found \(value)"))
        }
        if !(0...1).contains(warmup_ratio) { problems.append(SpecProblem(path.appending("warmup_ratio"), "expected a share in 0...1, found \(warmup_ratio)")) }
        return problems
    }
}

/// The router's SFT warm-up (the reference's sft.py) on its engine: the loop, the schedule and
/// the step count are here, each step itself the engine's (`Engine.sftStep`: the mean
/// next-token loss on the target, micro-batches summed, clipped, one AdamW step at this step's
/// learning rate). Checkpoints are the engine's state with the step count.
public final class RouterSFT: Checkpointable {
    public let router: DecoderRouter
    public let settings: RouterSFTSettings
    /// The warm-up and decay over every step (epochs × steps an epoch).
    public let schedule: LearningRateSchedule
    public private(set) var step = 0

    /// `rows`: the SFT rows an epoch goes through.
    public init(router: DecoderRouter, settings: RouterSFTSettings, rows: Int) {
        self.router = router; self.settings = settings
        let steps = settings.stepsPerEpoch(rows: rows) * settings.epochs
        schedule = settings.schedule.schedule(warmup: Int((Double(steps) * settings.warmup_ratio).rounded(.up)), total: steps)
    }

    /// One optimiser step over `batch` (targets from `targetsFrom[i]`); the batch's mean loss
    /// before the step.
    public func train(_ batch: [[Int]], targetsFrom: [Int]) throws -> Float {
        let step = SFTStepSettings(lr: Float(settings.lr) * schedule.multiplier(self.step), weightDecay: Float(settings.weight_decay),
                                   maxGradientNorm: settings.max_grad_norm > 0 ? Float(settings.max_grad_norm) : nil)
        let loss = try router.engine.sftStep(router.model, batch: batch, targetsFrom: targetsFrom, accumulation: settings.gradient_accumulation,
                                             settings: step)
        self.step += 1
        return loss
    }

    public func state() throws -> [UInt8] { try router.engine.state(metadata: metadata) }

    public func restore(_ bytes: [UInt8]) throws { try resume(try router.engine.restore(bytes)) }

    public var checkpointsAsFiles: Bool { router.engine.writesStateFiles }
    public func save(into directory: String) throws { try router.engine.saveState(to: directory + "/state.safetensors", metadata: metadata) }
    public func restore(from directory: String) throws { try resume(try router.engine.restoreState(from: directory + "/state.safetensors")) }

    /// The step count, in the state's metadata.
    private var metadata: [String: String] { ["sft_step": String(step)] }

    private func resume(_ metadata: [String: String]) throws {
        guard let s = metadata["sft_step"].flatMap({ Int($0) }) else { throw RouterError("router SFT checkpoint: no step count") }
        step = s
    }
}
