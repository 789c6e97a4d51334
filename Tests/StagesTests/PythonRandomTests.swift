import Foundation
import XCTest
@testable import Stages

/// CPython's random.Random is the oracle: python3 prints what each method returns.
final class PythonRandomTests: XCTestCase {
    func python(_ script: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        return String(decoding: data, as: UTF8.self)
    }

    let seeds = [0, 1, 2, 42, 43, 1000, 123_456_789, 4_294_967_295, 4_294_967_296, 98_765_432_109_876, -7, Int.max]

    func testRandomAndGetrandbitsMatchCPython() throws {
        let py = try python("""
            import random
            for s in \(seeds):
                r = random.Random(s)
                print(repr(r.random()), r.getrandbits(1), r.getrandbits(7), r.getrandbits(32), r.getrandbits(33), r.getrandbits(64), repr(r.random()))
            """)
        var expected = py.split(separator: "\n").map(String.init)
        for s in seeds {
            var r = PythonRandom(seed: s)
            let line = "\(r.random()) \(r.getrandbits(1)) \(r.getrandbits(7)) \(r.getrandbits(32)) \(r.getrandbits(33)) \(r.getrandbits(64)) \(r.random())"
            XCTAssertEqual(line, expected.removeFirst(), "seed \(s)")
        }
    }

    func testShuffleChoiceSampleChoicesMatchCPythonOverSizes() throws {
        let sizes = [1, 2, 3, 5, 10, 21, 22, 50, 100, 300]
        let py = try python("""
            import random
            for s in \(seeds):
                for n in \(sizes):
                    r = random.Random(s)
                    x = list(range(n)); r.shuffle(x)
                    c = [r.choice(range(n)) for _ in range(5)]
                    b = [r._randbelow(n) for _ in range(5)]
                    ks = sorted(set([0, 1, n // 3, n // 2, n]))
                    sm = [r.sample(range(n), k) for k in ks]
                    ch = r.choices(range(n), k=7)
                    print(x, c, b, sm, ch)
            """)
        var expected = py.split(separator: "\n").map(String.init)
        for s in seeds {
            for n in sizes {
                var r = PythonRandom(seed: s)
                var x = Array(0..<n); r.shuffle(&x)
                let c = (0..<5).map { _ in r.choice(Array(0..<n))! }
                let b = (0..<5).map { _ in r.randbelow(n) }
                let ks = Array(Set([0, 1, n / 3, n / 2, n])).sorted()
                let sm = ks.map { r.sample(Array(0..<n), $0) }
                let ch = r.choices(Array(0..<n), k: 7)
                XCTAssertEqual("\(x) \(c) \(b) \(sm) \(ch)", expected.removeFirst(), "seed \(s), n \(n)")
            }
        }
    }

    func testSampleUsesTheSetAlgorithmForLargePopulations() throws {
        // n = 1000, k = 3: setsize 21 < n, so CPython draws with a selected set.
        let py = try python("import random; r = random.Random(5); print(r.sample(range(1000), 3), r.sample(range(10000), 40))")
        var r = PythonRandom(seed: 5)
        XCTAssertEqual("\(r.sample(Array(0..<1000), 3)) \(r.sample(Array(0..<10000), 40))", py.trimmingCharacters(in: .newlines))
    }
}
