import XCTest
@testable import NN

final class BLASTests: XCTestCase {
    /// The naive product, kept as the reference for the BLAS one (llm.c's habit).
    func naiveMatmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k { c[i * n + j] += a[i * k + p] * b[p * n + j] } } }
        return c
    }

    /// On an AVX2+FMA CPU with no OPENBLAS_CORETYPE of the user's, OpenBLAS runs its Haswell
    /// kernels (docs/running.md, "Reproducibility"); the kernel family and CPU are reported.
    func testTheKernelFamilyIsTheReproducibleOne() throws {
        let blas = try BLAS.shared()
        XCTAssertEqual(BLAS.loadedCoreName, blas.coreName)
        XCTAssertFalse(Machine.cpuModel.isEmpty)
        if let user = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], user != BLAS.reproducibleCore {
            XCTAssertEqual(blas.coreName.lowercased(), user.lowercased(), "the user's choice wins")
        } else if Machine.cpuFlags.isSuperset(of: ["avx2", "fma"]) {
            XCTAssertEqual(blas.coreName, BLAS.reproducibleCore, "CPU \(Machine.cpuModel)")
        }
    }

    func testSgemmMatchesTheNaiveProductOverSizes() throws {
        let blas = try BLAS.shared()
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(1, 1, 1), (2, 3, 5), (7, 1, 3), (16, 33, 10), (64, 64, 64)] {
            let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
            var c = [Float](repeating: 0, count: m * n)
            c.withUnsafeMutableBufferPointer { cp in blas.sgemm(m: m, n: n, k: k, a: a, b: b, c: cp.baseAddress!) }
            let ref = naiveMatmul(a, b, m: m, n: n, k: k)
            for i in 0..<(m * n) { XCTAssertEqual(c[i], ref[i], accuracy: 1e-4 + 1e-5 * abs(ref[i]), "[\(m)x\(k)]·[\(k)x\(n)] at \(i)") }
        }
    }

    func testThreadCountIsControlled() throws {
        let blas = try BLAS.shared()
        blas.threads = 1
        XCTAssertEqual(blas.threads, 1)
    }

    func testAMissingLibraryNamesThePackageToInstall() {
        XCTAssertThrowsError(try DynamicLibrary(names: ["libdoesnotexist.so.9"], package: "libdoesnotexist-dev")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.hasPrefix("cannot load libdoesnotexist.so.9: "), text)
            XCTAssertTrue(text.hasSuffix("HINT: install it with `apt-get install libdoesnotexist-dev` (scripts/install-deps.sh does)"), text)
        }
    }
}
