import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS, loaded on first use, with its thread count under our control.
///
///     try BLAS.shared().sgemm(...)        // C = alpha·A·B + beta·C, row-major
///
/// Parallel stages each hold CPU slots; a stage sets OpenBLAS's threads to its slots so that
/// concurrent stages do not oversubscribe the cores.
public final class BLAS: @unchecked Sendable {
    public typealias SGEMM = @convention(c) (CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint,
                                             Float, UnsafePointer<Float>?, blasint, UnsafePointer<Float>?, blasint,
                                             Float, UnsafeMutablePointer<Float>?, blasint) -> Void

    public let library: DynamicLibrary
    public typealias DGEMM = @convention(c) (CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint,
                                             Double, UnsafePointer<Double>?, blasint, UnsafePointer<Double>?, blasint,
                                             Double, UnsafeMutablePointer<Double>?, blasint) -> Void
    public let sgemmFunction: SGEMM
    /// Double precision, for the table routers (their figures were computed in Double).
    public let dgemmFunction: DGEMM
    private let setThreads: @convention(c) (Int32) -> Void
    private let getThreads: @convention(c) () -> Int32

    private static let instance = LoadedOnce { () throws(DynamicLibrary.LoadError) in try BLAS() }

    /// The process-wide OpenBLAS (loaded at the first call).
    public static func shared() throws(DynamicLibrary.LoadError) -> BLAS { try instance.get() }

    /// The OpenBLAS kernel family in use ("Haswell", "Zen", "SkylakeX", ...): machines whose
    /// kernels differ round differently, so it is recorded with results.
    public let coreName: String
    /// The kernel family chosen when the user sets none: `Haswell` on every x86-64 CPU with
    /// AVX2 and FMA (Intel since 2013, AMD Zen), so that such machines compute the same bits
    /// (OpenBLAS would pick SkylakeX's AVX-512 kernels on some, Zen's on others; Zen's give the
    /// same results as Haswell's, SkylakeX's do not). `OPENBLAS_CORETYPE` set by the user wins.
    public static let reproducibleCore = "Haswell"

    private static func chooseCore() {
        guard getenv("OPENBLAS_CORETYPE") == nil, Machine.cpuFlags.isSuperset(of: ["avx2", "fma"]) else { return }
        setenv("OPENBLAS_CORETYPE", reproducibleCore, 0)
    }

    private static let loaded = OnceFlag()

    /// The kernel family of the loaded OpenBLAS, or nil when this process has not loaded it
    /// (so recording it costs no start-up).
    public static var loadedCoreName: String? { loaded.isSet ? try? shared().coreName : nil }

    private init() throws(DynamicLibrary.LoadError) {
        BLAS.chooseCore()
        Memory.keepFreedMemory()
        library = try DynamicLibrary(names: ["libopenblas.so.0", "libopenblas.so"], package: "libopenblas-dev")
        if let name = try? library.symbol("openblas_get_corename", as: (@convention(c) () -> UnsafePointer<CChar>?).self)(), name.pointee != 0 {
            coreName = String(cString: name)
        } else {
            coreName = "unknown"
        }
        BLAS.loaded.set()
        sgemmFunction = try library.symbol("cblas_sgemm", as: SGEMM.self)
        dgemmFunction = try library.symbol("cblas_dgemm", as: DGEMM.self)
        setThreads = try library.symbol("openblas_set_num_threads", as: (@convention(c) (Int32) -> Void).self)
        getThreads = try library.symbol("openblas_get_num_threads", as: (@convention(c) () -> Int32).self)
    }

    public var threads: Int {
        get { Int(getThreads()) }
        set { setThreads(Int32(max(1, newValue))) }
    }

    /// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major, where op transposes when asked:
    /// A is stored m×k (k×m when `transA`), B k×n (n×k when `transB`), with leading dimensions
    /// given or, by default, those of contiguous storage.
    public func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                     a: UnsafePointer<Float>, lda: Int? = nil, b: UnsafePointer<Float>, ldb: Int? = nil,
                     beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        guard m > 0 && n > 0 else { return }
        let g = GemmLayout(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc)
        sgemmFunction(CblasRowMajor, g.transA, g.transB, g.m, g.n, g.k, alpha, a, g.lda, b, g.ldb, beta, c, g.ldc)
    }

    /// `gemm` in double precision: C[m×n] = alpha · op(A) · op(B) + beta · C, row-major.
    public func dgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Double = 1,
                      a: UnsafePointer<Double>, lda: Int? = nil, b: UnsafePointer<Double>, ldb: Int? = nil,
                      beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int? = nil) {
        guard m > 0 && n > 0 else { return }
        let g = GemmLayout(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc)
        dgemmFunction(CblasRowMajor, g.transA, g.transB, g.m, g.n, g.k, alpha, a, g.lda, b, g.ldb, beta, c, g.ldc)
    }

    /// The CBLAS arguments of a row-major product that both precisions share: the transposes,
    /// and the leading dimensions given or, by default, those of contiguous storage.
    private struct GemmLayout {
        let transA: CBLAS_TRANSPOSE, transB: CBLAS_TRANSPOSE
        let m: blasint, n: blasint, k: blasint, lda: blasint, ldb: blasint, ldc: blasint
        init(transA ta: Bool, transB tb: Bool, m: Int, n: Int, k: Int, lda: Int?, ldb: Int?, ldc: Int?) {
            transA = ta ? CblasTrans : CblasNoTrans; transB = tb ? CblasTrans : CblasNoTrans
            self.m = blasint(m); self.n = blasint(n); self.k = blasint(k)
            self.lda = blasint(lda ?? (ta ? m : k)); self.ldb = blasint(ldb ?? (tb ? k : n)); self.ldc = blasint(ldc ?? n)
        }
    }

    /// C[m×n] = alpha · A[m×k] · B[k×n] + beta · C, all row-major and contiguous.
    public func sgemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                      beta: Float = 0, c: UnsafeMutablePointer<Float>) {
        sgemmFunction(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(m), blasint(n), blasint(k),
                      alpha, a, blasint(k), b, blasint(n), beta, c, blasint(n))
    }
}
