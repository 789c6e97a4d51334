import Glibc
import NN

/// Everything the learning stages ask of tensors (docs/engine.md), as one protocol: load
/// models; route (greedy replies are `generate` calls; the teacher-forced distribution over
/// actions; the pooled state); the parameter generators' forward; generate batches of calls,
/// each under its own update, with per-token log q and the sampling uniforms given by the
/// caller; accumulate the gradient of coefficient · Σ log q of given calls; an optimiser step at
/// given learning rates; an SFT step; save and load state. The method (Stages/HAPS) holds
/// prompts, parsing, rewards, schedules and seeds, and talks to tensors only through this, so
/// that one method runs on every engine: `CPUEngine` (this module, OpenBLAS) and the PyTorch
/// worker (issue 27). Token ids cross the seam, never text.
///
/// Handles (`EngineModel`, `PooledState`, `EngineUpdate`, `EngineCallID`) name what the engine
/// keeps; a question's state (its pooled state and updates when kept for backward, recorded
/// calls, accumulated gradients) lives until `step` or `release`, so that many questions can
/// be in flight at once.
public protocol Engine: AnyObject, Sendable {
    /// The engine's name, versions and devices, for the run record.
    var info: EngineInfo { get }

    // MARK: Models

    /// Loads a Hugging Face model directory (config.json, safetensors): a frozen candidate, or
    /// (`trainable`) the router's backbone, whose weights steps change.
    func loadModel(directory: String, name: String, trainable: Bool) throws -> EngineModel
    /// Replaces a trainable model's weights by a directory's (a kept checkpoint).
    func loadWeights(_ model: EngineModel, directory: String) throws
    /// Writes a model's config.json and model.safetensors (torch's names) into `directory`.
    func saveModel(_ model: EngineModel, to directory: String) throws
    /// A model's weights by torch's names.
    func weights(_ model: EngineModel) throws -> [String: Tensor]
    /// Replaces a trainable model's weights.
    func setWeights(_ model: EngineModel, _ weights: [String: Tensor]) throws
    /// Rounds a trainable model's weights to bfloat16 and back (the reference's bf16 router).
    func roundWeightsToBFloat16(_ model: EngineModel) throws

    // MARK: Generation and routing

    /// Generates every call (their rows batched as the engine sees fit); results in order.
    func generate(_ calls: [EngineCall]) throws -> [EngineReply]
    /// The log-probability of each continuation after `prompt`, teacher-forced and summed over
    /// its tokens (the router's distribution over the actions' replies).
    func continuationLogProbabilities(_ model: EngineModel, prompt: [Int], continuations: [[Int]]) throws -> [Double]
    /// The mean over positions of the last hidden state (after the final norm) for `prompt`,
    /// over `positions` only when given (nil: all); `keepForBackward`: kept, so that a step can
    /// send a gradient into the backbone.
    func pooledState(_ model: EngineModel, prompt: [Int], positions: Range<Int>?, keepForBackward: Bool) throws -> PooledState

    // MARK: Parameter generators

    /// One generator a candidate, initialised from `seed` (every one alike, as the reference's
    /// `set_seed(43)` before each), replacing any there were.
    func makeGenerators(_ shapes: [GeneratorShape], seed: UInt64) throws
    /// Generators from named weights (torch's names), replacing any there were.
    func setGenerators(_ weights: [[String: Tensor]], rank: Int) throws
    /// Each generator's weights (torch's names).
    func generatorWeights() throws -> [[String: Tensor]]
    /// Generator `generator`'s update for a pooled state: A (D × r) and B (r × D), applied as
    /// alpha·A·B to the last `layers` layers' o_proj; `keepForBackward`: kept for a step.
    func makeUpdate(generator: Int, from pooled: PooledState, alpha: Float, layers: Int, keepForBackward: Bool) throws -> EngineUpdate

    // MARK: Learning

    /// Adds coefficient · ∇ Σ log q of `calls` (made with `recordsGradient`, under `update`) to
    /// the update's gradient; the calls' gradients are summed in the order given, then scaled.
    /// An update with no calls still takes part in the step (its gradient zero).
    func accumulate(_ update: EngineUpdate, calls: [EngineCallID], coefficient: Float) throws
    /// One optimiser step from what `accumulate` gathered: each update's gradient through its
    /// generator (AdamW at `generatorLRs[g]`, weight decay 0) and, with `routerLR`, through the
    /// pooled state into the router's backbone (AdamW, weight decay 0.01); then the updates'
    /// and the pooled state's state is released.
    func step(_ step: EngineStep) throws
    /// Releases what the engine keeps for these updates and this pooled state, without a step.
    func release(_ updates: [EngineUpdate], pooled: PooledState?)
    /// One SFT step of a trainable model: the mean next-token loss of `batch` (targets from
    /// `targetsFrom[i]`), `accumulation` micro-batches summed, clipped, one AdamW step at `lr`.
    /// Returns the batch's mean loss before the step.
    func sftStep(_ model: EngineModel, batch: [[Int]], targetsFrom: [Int], accumulation: Int, settings: SFTStepSettings) throws -> Float

    // MARK: State

    /// Every trainable weight and optimiser moment the engine holds, and the caller's
    /// `metadata` (a trainer's counters), as safetensors bytes (`restore` continues from them
    /// bit for bit, and gives the metadata back).
    func state(metadata: [String: String]) throws -> [UInt8]
    func restore(_ bytes: [UInt8]) throws -> [String: String]
    /// Whether the engine writes its state to files itself (`saveState(to:)`): the torch
    /// engine's worker does, so that gigabytes of weights and moments never pass through this
    /// process; a trainer then checkpoints as files.
    var writesStateFiles: Bool { get }
    /// The same state as a file at `path` (safetensors), and back.
    func saveState(to path: String, metadata: [String: String]) throws
    func restoreState(from path: String) throws -> [String: String]
    /// Whether calls from concurrent callers decode together (the torch engine's batcher), so
    /// that a trainer gains by running a question's dialogues at once. The CPU engine's answer
    /// is no: its trainers keep one call at a time, so that a row's arithmetic never depends
    /// on what it was batched with and their outputs are the same bits on every run.
    var batchesConcurrentCalls: Bool { get }
}

extension Engine {
    /// The pooled state over every position of `prompt` (the reference's).
    public func pooledState(_ model: EngineModel, prompt: [Int], keepForBackward: Bool) throws -> PooledState {
        try pooledState(model, prompt: prompt, positions: nil, keepForBackward: keepForBackward)
    }
    public var writesStateFiles: Bool { false }
    public var batchesConcurrentCalls: Bool { false }
    public func saveState(to path: String, metadata: [String: String]) throws { try write(try state(metadata: metadata), to: path) }
    public func restoreState(from path: String) throws -> [String: String] { try restore(try ModelFiles.read(path)) }

    /// Writes state bytes to a file, or says why not.
    func write(_ bytes: [UInt8], to path: String) throws {
        guard let f = fopen(path, "wb") else { throw EngineError("cannot write \(path): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        guard fclose(f) == 0, written == bytes.count else { throw EngineError("cannot write \(path): the disk may be full") }
    }
}

/// An engine's description, for the run record.
public struct EngineInfo: Sendable, Equatable {
    public var name: String
    public var versions: [String: String]
    public var devices: [String]
    public init(name: String, versions: [String: String] = [:], devices: [String] = []) {
        self.name = name; self.versions = versions; self.devices = devices
    }
}

/// A model an engine holds, with its config (what prompts and generators are sized by).
public struct EngineModel: Sendable, Hashable {
    public let id: Int
    public let name: String
    public let config: DecoderConfig
    public static func == (a: EngineModel, b: EngineModel) -> Bool { a.id == b.id }
    public func hash(into h: inout Hasher) { h.combine(id) }
}

/// A pooled state the engine computed (and, when asked, kept for backward).
public struct PooledState: Sendable {
    public let id: Int
    public let values: [Float]
}

/// A generator's shape: the router's hidden size in, `layers` hidden layers of `hidden`, heads
/// for a rank-`rank` update of a candidate with hidden size `target`.
public struct GeneratorShape: Sendable, Equatable {
    public var input: Int, hidden: Int, layers: Int, target: Int, rank: Int
    public init(input: Int, hidden: Int, layers: Int, target: Int, rank: Int) {
        self.input = input; self.hidden = hidden; self.layers = layers; self.target = target; self.rank = rank
    }
}

/// An update the engine keeps: which generator made it, and its values (A, B, alpha, layers).
public struct EngineUpdate: Sendable {
    public let id: Int
    public let generator: Int
    public let lora: LoRAUpdate
}

/// A recorded call (its log q's gradient kept for `accumulate`).
public struct EngineCallID: Sendable, Hashable {
    public let id: Int
}

/// One generation call.
public struct EngineCall: Sendable {
    public var model: EngineModel
    public var prompt: [Int]
    public var maxNewTokens: Int
    /// Generation ends after any of these (included in the ids).
    public var stopTokens: Set<Int>
    /// 0: greedy (the first of equal maxima).
    public var temperature: Float
    public var topP: Float
    public var rule: NucleusRule
    /// The uniform each sampled token draws, in order (at least `maxNewTokens` when sampled).
    public var uniforms: [Float]
    /// The update applied (nil: the base weights).
    public var update: EngineUpdate?
    /// Keep what the gradient of this call's log q needs (needs an update).
    public var recordsGradient: Bool

    public init(model: EngineModel, prompt: [Int], maxNewTokens: Int, stopTokens: Set<Int>, temperature: Float = 0, topP: Float = 1,
                rule: NucleusRule = .standard, uniforms: [Float] = [], update: EngineUpdate? = nil, recordsGradient: Bool = false) {
        self.model = model; self.prompt = prompt; self.maxNewTokens = maxNewTokens; self.stopTokens = stopTokens
        self.temperature = temperature; self.topP = topP; self.rule = rule; self.uniforms = uniforms; self.update = update
        self.recordsGradient = recordsGradient
    }
}

extension EngineCall {
    /// What makes a call unrunnable on any engine, checked before any is run: a recorded call
    /// without an update, a sampled call given fewer uniforms than it may draw.
    public func validate() throws {
        if recordsGradient && update == nil { throw EngineError("a recorded call needs an update (its gradient is with respect to A and B)") }
        if temperature > 0 && uniforms.count < maxNewTokens {
            throw EngineError("a sampled call of up to \(maxNewTokens) tokens was given \(uniforms.count) uniforms")
        }
    }
}

/// What a call generated.
public struct EngineReply: Sendable {
    public var ids: [Int]
    /// Each token's log-probability under the distribution it was drawn from.
    public var logprobs: [Float]
    /// "stop" (the last id is a stop token) or "length".
    public var finishReason: String
    /// Σ log q as differentiated (recorded calls; else the sum of `logprobs`).
    public var logq: Float
    /// Set for a recorded call.
    public var call: EngineCallID?
}

/// One joint-RL optimiser step.
public struct EngineStep: Sendable {
    /// The learning rate of each generator whose update took part (every one must).
    public var generatorLRs: [Int: Float]
    /// The router's learning rate; nil: the backbone gets no gradient (no sharing, or frozen).
    public var routerLR: Float?
    /// The pooled state the updates were made from (kept for backward when `routerLR` is set).
    public var pooled: PooledState
    /// The updates that take part (each must have been accumulated, if only with no calls).
    public var updates: [EngineUpdate]
    /// Round the router's weights to bfloat16 after its update (the reference's bf16 router).
    public var routerBF16: Bool
    /// A question's part of a step: the pooled state its updates were made from, and them.
    public struct Question: Sendable {
        public var pooled: PooledState
        public var updates: [EngineUpdate]
        public init(pooled: PooledState, updates: [EngineUpdate]) { self.pooled = pooled; self.updates = updates }
    }
    /// Further questions whose gradients join this step (several questions per update): each
    /// question's gradients flow through its own updates and pooled state, are summed (in
    /// question order) with the others', and each optimiser steps once. Empty: one question.
    public var more: [Question] = []
    /// Every question of the step, the first (`pooled`, `updates`) first.
    public var questions: [Question] { [Question(pooled: pooled, updates: updates)] + more }
    public init(updates: [EngineUpdate], generatorLRs: [Int: Float], routerLR: Float?, pooled: PooledState, routerBF16: Bool,
                more: [Question] = []) {
        self.updates = updates; self.generatorLRs = generatorLRs; self.routerLR = routerLR; self.pooled = pooled; self.routerBF16 = routerBF16
        self.more = more
    }
}

/// An SFT step's optimiser settings (the schedule is the caller's: `lr` is this step's).
public struct SFTStepSettings: Sendable, Equatable {
    public var lr: Float
    public var weightDecay: Float
    /// nil: no clipping.
    public var maxGradientNorm: Float?
    public init(lr: Float, weightDecay: Float, maxGradientNorm: Float?) {
        self.lr = lr; self.weightDecay = weightDecay; self.maxGradientNorm = maxGradientNorm
    }
}

/// An engine refusing a request: what and why.
public struct EngineError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "engine: " + message }

    /// Pooled positions must be a non-empty part of the prompt (every engine checks alike).
    static func checkPooled(_ positions: Range<Int>?, of prompt: [Int]) throws {
        if let positions, positions.isEmpty || positions.lowerBound < 0 || positions.upperBound > prompt.count {
            throw EngineError("pooled positions \(positions) are not a non-empty part of the prompt's \(prompt.count) tokens")
        }
    }
}
