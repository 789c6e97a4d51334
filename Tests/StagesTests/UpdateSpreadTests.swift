import XCTest
import LLM
import NN
@testable import Stages

/// The spread of generated updates from their factors' Gram matrix equals the spread of the
/// updates formed in full (α · A · B, in double precision).
final class UpdateSpreadTests: XCTestCase {
    func random(_ rows: Int, _ columns: Int, _ seed: inout UInt64) -> Tensor {
        Tensor(shape: [rows, columns], data: (0..<rows * columns).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Double(seed >> 11) / Double(1 << 53) - 0.5)
        })
    }

    func testTheSpreadEqualsTheFullUpdatesOne() throws {
        var seed: UInt64 = 5
        let (hidden, width) = (6, 9)
        let updates = [(2, 0.5), (2, 1.0), (3, 0.25), (1, 2.0)].map { rank, alpha in
            LoRAUpdate(a: random(hidden, rank, &seed), b: random(rank, width, &seed), alpha: Float(alpha), layers: 1)
        }
        // The updates in full.
        let full = updates.map { u -> [Double] in
            (0..<hidden * width).map { at in
                let (i, k) = (at / width, at % width)
                return Double(u.alpha) * (0..<u.a.columns).reduce(0.0) { $0 + Double(u.a.data[i * u.a.columns + $1]) * Double(u.b.data[$1 * width + k]) }
            }
        }
        let n = Double(full.count)
        let mean = (0..<hidden * width).map { at in full.reduce(0.0) { $0 + $1[at] } / n }
        let norm = { (x: [Double]) in x.reduce(0.0) { $0 + $1 * $1 }.squareRoot() }
        let meanNorm = norm(mean)
        let relative = full.map { x in norm(zip(x, mean).map { $0 - $1 }) }.reduce(0, +) / n / meanNorm
        let spread = try XCTUnwrap(try UpdateSpread(updates))
        XCTAssertEqual(spread.count, 4)
        XCTAssertEqual(spread.meanUpdateNorm, meanNorm, accuracy: 1e-5 * meanNorm)
        XCTAssertEqual(spread.updateNorm, full.map(norm).reduce(0, +) / n, accuracy: 1e-5)
        XCTAssertEqual(spread.relative, relative, accuracy: 1e-4 * relative)
        XCTAssertGreaterThan(spread.relative, 0.5, "random updates are far apart")

        let same = try XCTUnwrap(try UpdateSpread([updates[0], updates[0], updates[0]]))
        XCTAssertEqual(same.relative, 0, accuracy: 1e-6, "one update for every question: no spread")
        XCTAssertEqual(same.meanUpdateNorm, same.updateNorm, accuracy: 1e-9)
        XCTAssertNil(try UpdateSpread([]))

        // By group: each group's mean and spread against the full updates'.
        let names = ["x", "y", "x", "y"]
        let grouped = try XCTUnwrap(try UpdateSpread(updates, groups: names))
        XCTAssertEqual(grouped.relative, spread.relative, accuracy: 1e-12, "groups leave the whole spread as it is")
        for name in ["x", "y"] {
            let members = full.indices.filter { names[$0] == name }.map { full[$0] }
            let groupMean = (0..<hidden * width).map { at in members.reduce(0.0) { $0 + $1[at] } / Double(members.count) }
            let group = try XCTUnwrap(grouped.groups[name])
            XCTAssertEqual(group.count, 2)
            XCTAssertEqual(group.shift, norm(zip(groupMean, mean).map { $0 - $1 }) / meanNorm, accuracy: 1e-4 * group.shift, name)
            let within = members.map { x in norm(zip(x, groupMean).map { $0 - $1 }) }.reduce(0, +) / Double(members.count) / meanNorm
            XCTAssertEqual(group.spread, within, accuracy: 1e-4 * within, name)
        }
        let alike = try XCTUnwrap(try UpdateSpread([updates[0], updates[1], updates[0], updates[1]], groups: ["x", "y", "x", "y"]))
        XCTAssertEqual(alike.groups["x"]!.spread, 0, accuracy: 1e-6, "one update per group: no spread within")
        XCTAssertGreaterThan(alike.groups["x"]!.shift, 0.1, "but the groups' updates differ")
    }
}
