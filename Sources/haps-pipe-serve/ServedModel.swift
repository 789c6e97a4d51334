import Foundation
import LLM
import NN

/// A served chat model: how prompts are rendered and replies decoded (`ChatCodec`), its
/// context, and what generates: this program's engine behind a `GenerationBatcher`, or the
/// torch engine's worker (`--engine torch`), whose batcher merges concurrent requests.
struct ServedModel: Sendable {
    let name: String
    let codec: ChatCodec
    let maxPositions: Int
    let generator: any ServedGenerator

    func stop() { generator.stop() }
}

/// Generates one request's tokens; a full queue throws `QueueFull`.
protocol ServedGenerator: Sendable {
    func generate(_ request: GenerationRequest) async throws -> GenerationResult
    func stop()
}

struct QueueFull: Error, CustomStringConvertible {
    var description: String
}

/// The CPU engine's batcher (OpenBLAS, this process).
struct CPUGenerator: ServedGenerator {
    let batcher: GenerationBatcher

    func generate(_ request: GenerationRequest) async throws -> GenerationResult {
        try await withCheckedThrowingContinuation { continuation in
            do { try batcher.submit(request) { continuation.resume(with: $0) } } catch {
                continuation.resume(throwing: QueueFull(description: "\(error)"))
            }
        }
    }

    func stop() { batcher.stop() }
}

/// Blocking work (the engines' calls) run off the server's event loops, each on its own
/// thread, at most `limit` admitted at once: `admit` says whether one more fits, `run` runs an
/// admitted body and frees its place.
final class OffLoopQueue: @unchecked Sendable {
    let limit: Int
    private let lock = NSLock()
    private var admitted = 0

    init(limit: Int) { self.limit = limit }

    func admit() -> Bool {
        lock.withLock {
            if admitted >= limit { return false }
            admitted += 1
            return true
        }
    }

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { [self] in
                let result = Result { try body() }
                lock.withLock { admitted -= 1 }
                continuation.resume(with: result)
            }
        }
    }
}

/// The torch engine: each request one call (its seed's uniforms when sampled, as this
/// program's engine draws them), run off the server's threads; at most `maxQueue` waiting.
final class TorchGenerator: ServedGenerator, @unchecked Sendable {
    let engine: TorchEngine
    let model: EngineModel
    let queue: OffLoopQueue

    init(engine: TorchEngine, model: EngineModel, maxQueue: Int) {
        self.engine = engine; self.model = model; queue = OffLoopQueue(limit: maxQueue)
    }

    func generate(_ request: GenerationRequest) async throws -> GenerationResult {
        guard queue.admit() else { throw QueueFull(description: "\(queue.limit) requests are waiting for the engine") }
        let call = EngineCall(model: model, prompt: request.prompt, maxNewTokens: request.maxNewTokens, stopTokens: request.stopTokens,
                              temperature: request.temperature, topP: request.topP, rule: request.nucleusRule,
                              uniforms: request.temperature > 0 ? SamplingRandom.uniforms(seed: request.seed, count: request.maxNewTokens) : [])
        return try await queue.run { [engine] in
            let r = try engine.generate([call])[0]
            return GenerationResult(ids: r.ids, logprobs: r.logprobs, finishReason: r.finishReason)
        }
    }

    func stop() { engine.worker.stop() }
}
