import XCTest
@testable import NN

/// Every kernel's backward against central finite differences of a random scalar of its output.
final class BackwardTests: XCTestCase {
    var rng = SystemRandomNumberGenerator()
    func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &rng) }) }

    /// f(x) = Σ y ⊙ probe, so df/dy = probe.
    func check(_ name: String, _ x: Tensor, forward: (Tensor) throws -> Tensor, analytic: (Tensor, Tensor) throws -> Tensor) throws {
        let probe = random(try forward(x).shape)
        func f(_ x: Tensor) throws -> Double { zip(try forward(x).data, probe.data).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
        let g = try analytic(x, probe)
        for i in stride(from: 0, to: x.count, by: max(1, x.count / 17)) {
            var plus = x, minus = x
            let eps: Float = 1e-2
            plus.data[i] += eps; minus.data[i] -= eps
            let numeric = Float((try f(plus) - f(minus)) / Double(2 * eps))
            XCTAssertEqual(g.data[i], numeric, accuracy: 1e-3 + 1e-2 * abs(numeric), "\(name)[\(i)]")
        }
    }

    func testLinear() throws {
        let w = random([5, 7]), b = random([5]), x = random([3, 7])
        try check("linear dX", x, forward: { try Kernels.linear($0, w, bias: b) }) { _, dy in
            var dw: Tensor? = nil, db: Tensor? = nil
            return try Backward.linear(dy, x: x, w: w, dw: &dw, db: &db)
        }
        try check("linear dW", w, forward: { try Kernels.linear(x, $0, bias: b) }) { w, dy in
            var dw: Tensor? = Tensor(zeros: w.shape), db: Tensor? = nil
            _ = try Backward.linear(dy, x: x, w: w, dw: &dw, db: &db)
            return dw!
        }
        try check("linear db", b, forward: { try Kernels.linear(x, w, bias: $0) }) { b, dy in
            var dw: Tensor? = nil, db: Tensor? = Tensor(zeros: b.shape)
            _ = try Backward.linear(dy, x: x, w: w, dw: &dw, db: &db)
            return db!
        }
    }

    func testRMSNorm() throws {
        let w = random([6]), x = random([4, 6])
        try check("rmsnorm dx", x, forward: { Kernels.rmsNorm($0, weight: w, eps: 1e-6) }) { x, dy in
            var dw: Tensor? = nil
            return Backward.rmsNorm(dy, x: x, weight: w, eps: 1e-6, dw: &dw)
        }
        try check("rmsnorm dw", w, forward: { Kernels.rmsNorm(x, weight: $0, eps: 1e-6) }) { w, dy in
            var dw: Tensor? = Tensor(zeros: w.shape)
            _ = Backward.rmsNorm(dy, x: x, weight: w, eps: 1e-6, dw: &dw)
            return dw!
        }
    }

    func testSoftmaxAndSiLU() throws {
        let x = random([3, 5])
        func softmaxRows(_ x: Tensor) -> Tensor {
            var y = x
            y.data.withUnsafeMutableBufferPointer { for r in 0..<3 { Kernels.softmax($0.baseAddress! + r * 5, count: 5) } }
            return y
        }
        try check("softmax", x, forward: softmaxRows) { x, dy in
            let p = softmaxRows(x)
            var ds = Tensor(zeros: x.shape)
            for r in 0..<3 {
                dy.data.withUnsafeBufferPointer { dyp in
                    p.data.withUnsafeBufferPointer { pp in
                        ds.data.withUnsafeMutableBufferPointer { dsp in
                            Backward.softmax(dyp.baseAddress! + r * 5, p: pp.baseAddress! + r * 5, ds: dsp.baseAddress! + r * 5, count: 5)
                        }
                    }
                }
            }
            return ds
        }
        try check("silu", x, forward: { Tensor(shape: $0.shape, data: $0.data.map(Kernels.silu)) }) { x, dy in
            Tensor(shape: x.shape, data: zip(x.data, dy.data).map { Backward.siluDerivative($0) * $1 })
        }
    }
}
