public import LLM
public import NN

/// The router's SFT warm-up (the reference's sft.py) on its engine: the loop, the schedule and
/// the step count are here, each step itself the engine's (`Engine.sftStep`: the mean
/// next-token loss on the target, micro-batches summed, clipped, one AdamW step at this step's
/// learning rate). Checkpoints are the engine's state with the step count.
public final class RouterSFT: Checkpointable {
    public let router: DecoderRouter
    public let learningRate: Float
    public let schedule: LearningRateSchedule
    public let weightDecay: Float
    /// nil: no clipping.
    public let maxGradientNorm: Float?
    public private(set) var step = 0

    public init(router: DecoderRouter, learningRate: Float, schedule: LearningRateSchedule, weightDecay: Float, maxGradientNorm: Float?) {
        self.router = router; self.learningRate = learningRate; self.schedule = schedule
        self.weightDecay = weightDecay; self.maxGradientNorm = maxGradientNorm
    }

    /// One optimiser step over `batch` (targets from `targetsFrom[i]`); the batch's mean loss
    /// before the step.
    public func train(_ batch: [[Int]], targetsFrom: [Int], accumulation: Int) throws -> Float {
        let settings = SFTStepSettings(lr: learningRate * schedule.multiplier(step), weightDecay: weightDecay, maxGradientNorm: maxGradientNorm)
        let loss = try router.engine.sftStep(router.model, batch: batch, targetsFrom: targetsFrom, accumulation: accumulation, settings: settings)
        step += 1
        return loss
    }

    public func state() throws -> [UInt8] { try router.engine.state(metadata: ["sft_step": String(step)]) }

    public func restore(_ bytes: [UInt8]) throws {
        let metadata = try router.engine.restore(bytes)
        guard let s = metadata["sft_step"].flatMap({ Int($0) }) else { throw RouterError("router SFT checkpoint: no step count") }
        step = s
    }
}
