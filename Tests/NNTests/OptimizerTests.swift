import Foundation
import XCTest
@testable import NN
import TestSupport

final class OptimizerTests: XCTestCase {
    /// torch.optim.AdamW's update, written out in Python (double precision) as the oracle.
    static let oracle = """
        import json, math, sys
        a = json.load(sys.stdin)
        p, m, v = a['p'], [0.0] * len(a['p']), [0.0] * len(a['p'])
        b1, b2, eps, wd = 0.9, 0.999, 1e-8, a['wd']
        for t, (g, lr) in enumerate(zip(a['grads'], a['lrs']), 1):
            bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
            for i in range(len(p)):
                p[i] *= 1 - lr * wd
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                p[i] -= (lr / bc1) * m[i] / (math.sqrt(v[i]) / math.sqrt(bc2) + eps)
        print(json.dumps(p))
        """

    /// The update in eight lanes gives the bits of the plain scalar loop (kept here as the
    /// reference, llm.c's habit), over sizes around the lane width and a changing rate.
    func testTheVectorisedUpdateIsTheScalarOneBitForBit() {
        var rng = SamplingRandomForTests(seed: 3)
        for n in [1, 7, 8, 9, 16, 23, 64, 101] {
            let start = (0..<n).map { _ in rng.next() }
            let grads = (0..<4).map { _ in (0..<n).map { _ in rng.next() * 2 } }
            var opt = AdamW(weightDecay: 0.01)
            var params: [String: Tensor] = ["w": Tensor(shape: [n], data: start)]
            var p = start, m = [Float](repeating: 0, count: n), v = m
            for (t, g) in grads.enumerated() {
                let lr: Float = 0.05 / Float(t + 1), scale: Float = 0.5
                opt.update(&params, gradients: ["w": Tensor(shape: [n], data: g)], lr: lr, gradientScale: scale)
                let (b1, b2, eps): (Float, Float, Float) = (0.9, 0.999, 1e-8)
                let bc1 = 1 - pow(b1, Float(t + 1)), bc2Sqrt = (1 - pow(b2, Float(t + 1))).squareRoot()
                let stepSize = lr / bc1, decay = 1 - lr * 0.01
                for j in 0..<n {
                    let gj = g[j] * scale
                    p[j] *= decay
                    m[j] = b1 * m[j] + (1 - b1) * gj
                    v[j] = b2 * v[j] + (1 - b2) * gj * gj
                    p[j] -= stepSize * m[j] / (v[j].squareRoot() / bc2Sqrt + eps)
                }
                XCTAssertEqual(params["w"]!.data.map(\.bitPattern), p.map(\.bitPattern), "n \(n), step \(t)")
            }
        }
    }

    func testAdamWMatchesTorchsUpdateOverStepsWithAChangingRate() throws {
        var rng = SamplingRandomForTests(seed: 1)
        let start = (0..<10).map { _ in rng.next() }
        let grads = (0..<6).map { _ in (0..<10).map { _ in rng.next() * 3 } }
        let lrs: [Float] = [0.1, 0.05, 0.05, 0.01, 0.2, 0.001]
        var params = ["w": Tensor(shape: [10], data: start)]
        var opt = AdamW(weightDecay: 0.1)
        for (g, lr) in zip(grads, lrs) { opt.update(&params, gradients: ["w": Tensor(shape: [10], data: g)], lr: lr) }
        let input = try JSONSerialization.data(withJSONObject: ["p": start.map(Double.init), "grads": grads.map { $0.map(Double.init) },
                                                                  "lrs": lrs.map(Double.init), "wd": 0.1])
        let oracle = try Python.run(OptimizerTests.oracle, stdin: input).checked().stdoutData
        let expected = try XCTUnwrap(try JSONSerialization.jsonObject(with: oracle) as? [Double])
        for (a, b) in zip(params["w"]!.data, expected) { XCTAssertEqual(Double(a), b, accuracy: 1e-5 * max(1, abs(b))) }
        // A restored optimizer continues exactly where the saved one was.
        var restored = AdamW(weightDecay: 0.1)
        restored.restore(opt.state)
        var p1 = params, p2 = params
        opt.update(&p1, gradients: ["w": Tensor(shape: [10], data: grads[0])], lr: 0.05)
        restored.update(&p2, gradients: ["w": Tensor(shape: [10], data: grads[0])], lr: 0.05)
        XCTAssertEqual(p1, p2)
        XCTAssertEqual(restored.step, 7)
    }

    func testClippingScalesToTheMaximumNorm() {
        var g = ["a": Tensor(shape: [2], data: [3, 0]), "b": Tensor(shape: [1], data: [4])]
        XCTAssertEqual(Gradients.clip(&g, maxNorm: 1), 5, accuracy: 1e-6)
        XCTAssertEqual(g["a"]!.data[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(g["b"]!.data[0], 0.8, accuracy: 1e-5)
        var small = ["a": Tensor(shape: [1], data: [0.5])]
        Gradients.clip(&small, maxNorm: 1)
        XCTAssertEqual(small["a"]!.data, [0.5], "under the limit nothing changes")
    }

    func testSchedulesAsTransformersDefinesThem() {
        let cosine = LearningRateSchedule.cosine(warmup: 10, total: 110)
        XCTAssertEqual(cosine.multiplier(0), 0)
        XCTAssertEqual(cosine.multiplier(5), 0.5)
        XCTAssertEqual(cosine.multiplier(10), 1)
        XCTAssertEqual(cosine.multiplier(60), 0.5, accuracy: 1e-6)
        XCTAssertEqual(cosine.multiplier(110), 0, accuracy: 1e-6)
        let linear = LearningRateSchedule.linear(warmup: 4, total: 12)
        XCTAssertEqual(linear.multiplier(2), 0.5)
        XCTAssertEqual(linear.multiplier(8), 0.5)
        XCTAssertEqual(linear.multiplier(20), 0)
        let decay = LearningRateSchedule.linearDecay(from: 1, to: 0.1, total: 100)
        XCTAssertEqual(decay.multiplier(0), 1)
        XCTAssertEqual(decay.multiplier(50), 0.55, accuracy: 1e-6)
        XCTAssertEqual(decay.multiplier(100), 0.1, accuracy: 1e-6)
    }
}

/// A tiny deterministic generator for test data (values in [-1, 1)).
struct SamplingRandomForTests {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
}
