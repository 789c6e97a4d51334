/// A dense Float32 tensor in row-major order: a shape and its values.
///
/// Value semantics (the storage is a Swift array, copied on write), so tensors pass between
/// threads freely. The engine keeps shapes small and explicit: a matrix is `[rows, columns]`.
///
///     var t = Tensor(zeros: [2, 3])
///     t[1, 2] = 5
///     t.rows(1..<2)            // [[0, 0, 5]] as a 1×3 tensor
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
        self.shape = shape; self.data = data
    }

    public init(zeros shape: [Int]) { self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *))) }
    /// A tensor whose values are undefined until written: for outputs a kernel overwrites whole
    /// (a gradient written by one product), where zeroing them first would be wasted work.
    public init(uninitialized shape: [Int]) {
        let n = shape.reduce(1, *)
        self.init(shape: shape, data: [Float](unsafeUninitializedCapacity: n) { _, count in count = n })
    }

    public var count: Int { data.count }
    /// The size of the last dimension (a matrix's columns).
    public var columns: Int { shape.last ?? 1 }
    /// Everything before the last dimension, multiplied (a matrix's rows).
    public var rows: Int { shape.isEmpty ? 1 : count / max(1, columns) }

    public subscript(_ i: Int, _ j: Int) -> Float {
        get { data[i * columns + j] }
        set { data[i * columns + j] = newValue }
    }

    /// Rows `range` of a matrix (or of the tensor seen as rows × last dimension).
    public func rows(_ range: Range<Int>) -> Tensor {
        Tensor(shape: [range.count, columns], data: Array(data[(range.lowerBound * columns)..<(range.upperBound * columns)]))
    }

    public func reshaped(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: data) }

    /// The transpose of a matrix.
    public var transposed: Tensor {
        let r = rows, c = columns
        var out = [Float](repeating: 0, count: count)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<r { for j in 0..<c { dst[j * r + i] = src[i * c + j] } }
            }
        }
        return Tensor(shape: [c, r], data: out)
    }

    /// The largest absolute difference from `other`, relative to `other`'s largest magnitude
    /// (how reference comparisons are stated: "within 1e-4 of their scale").
    public func relativeDifference(_ other: Tensor) -> Float {
        precondition(count == other.count, "comparing \(shape) with \(other.shape)")
        var maxDiff: Float = 0, scale: Float = 0
        for i in 0..<count {
            maxDiff = max(maxDiff, abs(data[i] - other.data[i]))
            scale = max(scale, abs(other.data[i]))
        }
        return maxDiff / max(scale, .leastNormalMagnitude)
    }
}
