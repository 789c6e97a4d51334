import Foundation
import XCTest
@testable import LLM
import NN
import Threading

/// The torch engine's batcher with a `send` of our own in place of the worker (its own logic:
/// which calls go in which request, who gets which reply), as evaluation's dialogues use it:
/// callers that turn each reply into their next call after a moment of work of their own.
final class TorchCallBatcherTests: XCTestCase {
    let model = EngineModel(id: 0, name: "m", config: DecoderConfig(family: .llama, vocabSize: 10, hiddenSize: 4, intermediateSize: 8,
                                                                    layers: 1, heads: 1, kvHeads: 1, bosTokenID: 0, eosTokenIDs: [1]))

    /// A request that takes `seconds` and answers each call with its own prompt.
    func send(seconds: Double) -> @Sendable ([EngineCall]) throws -> [EngineReply] {
        { calls in
            Thread.sleep(forTimeInterval: seconds)
            return calls.map { EngineReply(ids: $0.prompt, logprobs: [], finishReason: "length", logq: 0) }
        }
    }

    /// `callers` dialogues of `turns` calls each, a few milliseconds of work between a reply
    /// and the next call: each caller gets its own replies, and after the first turn the
    /// callers' calls go out together (the sender waits for them) instead of alternating
    /// between a request of the first caller back and one of all the others.
    func testCallersThatComeBackMeetInOneRequest() throws {
        let batcher = TorchCallBatcher(maxRows: 64, gather: 0.2)
        let callers = 16, turns = 6
        let send = send(seconds: 0.03)
        final class Wrong: @unchecked Sendable { let lock = NSLock(); var replies: [String] = [] }
        let wrong = Wrong(), model = model
        Threads.run(count: callers) { c in
            for t in 0..<turns {
                let prompt = [c, t]
                do {
                    let reply = try batcher.generate([EngineCall(model: model, prompt: prompt, maxNewTokens: 1, stopTokens: [])], send: send)
                    if reply.map(\.ids) != [prompt] { wrong.lock.withLock { wrong.replies.append("caller \(c) turn \(t): \(reply.map(\.ids))") } }
                } catch {
                    wrong.lock.withLock { wrong.replies.append("caller \(c) turn \(t): \(error)") }
                }
                Thread.sleep(forTimeInterval: 0.002 + 0.001 * Double(c % 4))  // the dialogue's own work
            }
        }
        XCTAssertEqual(wrong.replies, [])
        let (requests, calls) = batcher.counts
        XCTAssertEqual(calls, callers * turns)
        // The first caller goes alone and the rest meet in the next request; from then on every
        // turn is one request (a slow machine may split one now and then).
        XCTAssertLessThanOrEqual(requests, turns + 3, "\(requests) requests for \(calls) calls")
    }

    /// A caller that does not come back (its dialogue ended) holds the others up for `gather`
    /// at most, not for ever; and a lone caller never waits.
    func testCallersThatDoNotComeBackHoldNoOneUp() throws {
        let batcher = TorchCallBatcher(maxRows: 64, gather: 0.2)
        let send = send(seconds: 0.01)
        let start = Date(), model = model
        Threads.run(count: 4) { c in
            for t in 0..<(c == 0 ? 6 : 1) {
                _ = try? batcher.generate([EngineCall(model: model, prompt: [c, t], maxNewTokens: 1, stopTokens: [])], send: send)
            }
        }
        XCTAssertEqual(batcher.counts.calls, 9)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "the gather window ends when no one comes back")
        let lone = TorchCallBatcher(maxRows: 64, gather: 10)
        let t0 = Date()
        for t in 0..<5 { _ = try lone.generate([EngineCall(model: model, prompt: [t], maxNewTokens: 1, stopTokens: [])], send: send) }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5, "a lone caller's next call is the arrival the sender waits for: no delay")
    }
}
