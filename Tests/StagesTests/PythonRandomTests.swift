import Foundation
import XCTest
@testable import Stages
import Pipeline
import NN
import TestSupport

/// CPython's random.Random is the oracle: python3 prints what each method returns.
final class PythonRandomTests: XCTestCase {
    let seeds = [0, 1, 2, 42, 43, 1000, 123_456_789, 4_294_967_295, 4_294_967_296, 98_765_432_109_876, -7, Int.max]

    func testRandomAndGetrandbitsMatchCPython() throws {
        let py = try Python.output("""
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
        let py = try Python.output("""
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
        let py = try Python.output("import random; r = random.Random(5); print(r.sample(range(1000), 3), r.sample(range(10000), 40))")
        var r = PythonRandom(seed: 5)
        XCTAssertEqual("\(r.sample(Array(0..<1000), 3)) \(r.sample(Array(0..<10000), 40))", py.trimmingCharacters(in: .newlines))
    }
}

/// Joint RL's bookkeeping against its oracles: the question order against python3's
/// `random.Random(43 + e).shuffle` chained over epochs, and the learning-rate decay against
/// torch's LinearLR (recorded in Tests/Fixtures/generator/linear_lr.json), the router's
/// scheduler stepping every question and a generator's only when it was used.
final class JointRLScheduleTests: XCTestCase {
    func testTheEpochOrderIsTheReferencesChainedShuffle() throws {
        let text = try Python.output("import random\no = list(range(37))\nfor e in range(4):\n    random.Random(43 + e).shuffle(o)\n    print(o)")
        let expected = text.split(separator: "\n").map { line in line.dropFirst().dropLast().split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces))! } }
        XCTAssertEqual(expected.count, 4)
        for e in 0..<4 { XCTAssertEqual(JointRLOrder.questions(count: 37, epoch: e), expected[e], "epoch \(e)") }
    }

    func testTheLinearDecayIsTorchsLinearLR() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/generator/linear_lr.json").path
        let f = try JSONParser.parse(try FileIO.readString(path))
        let base = f["base_lr"]!.doubleValue!, total = f["total"]!.intValue!
        let used = f["used"]!.arrayValue!.map { $0.boolValue! }
        let schedule = LearningRateSchedule.linearDecay(from: 1, to: 0.1, total: total)
        for (i, lr) in f["router"]!.arrayValue!.enumerated() {
            XCTAssertEqual(base * Double(schedule.multiplier(i)), lr.doubleValue!, accuracy: 1e-6 * base, "router step \(i)")
        }
        var stepped = 0  // a generator's scheduler counts only the questions that used it
        for (i, lr) in f["generator"]!.arrayValue!.enumerated() {
            XCTAssertEqual(base * Double(schedule.multiplier(stepped)), lr.doubleValue!, accuracy: 1e-6 * base, "generator step \(i)")
            if used[i] { stepped += 1 }
        }
    }
}
