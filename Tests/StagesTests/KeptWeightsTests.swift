import Foundation
import XCTest
@testable import Pipeline
@testable import Stages

/// What `sft-train` and `rl-train` rely on never to use damaged state (issue 25): a kept
/// directory (`best/`) sealed as checkpoints are names each kind of damage, and checkpoints
/// skipped as damaged are reported with what is wrong with them.
final class KeptWeightsTests: XCTestCase {
    func testASealedDirectoryNamesEachKindOfDamage() throws {
        let dir = try makeTempDir(self, "kept")
        let kept = SealedDirectory(path: dir + "/best")
        XCTAssertNil(kept.problem(), "none kept yet: nothing wrong")
        func keep() throws {
            try kept.replace { tmp in
                try FileIO.writeAtomically([UInt8](repeating: 7, count: 1000), to: tmp + "/a.bin")
                try FileIO.writeAtomically("b\n", to: tmp + "/sub/b.txt")
            }
        }
        try keep()
        XCTAssertNil(kept.problem())
        XCTAssertEqual(try kept.verifiedFiles(), ["a.bin", "sub/b.txt"], "the seal is not one of the files")
        let damages: [(String, () throws -> Void)] = [
            ("a.bin changed since it was kept (its SHA-256 differs: a changed byte)", {
                var b = try FileIO.read(dir + "/best/a.bin"); b[500] ^= 1; try FileIO.writeAtomically(b, to: dir + "/best/a.bin")
            }),
            ("a.bin is truncated: 500 of 1000 bytes", { XCTAssertEqual(truncate(dir + "/best/a.bin", 500), 0) }),
            ("sub/b.txt is missing", { FileIO.remove(dir + "/best/sub/b.txt") }),
            ("c.txt is not one of the files it was sealed with", { try FileIO.writeAtomically("c", to: dir + "/best/c.txt") }),
            ("it has no seal (.seal): kept by an older haps-pipe, or changed by hand", { FileIO.remove(dir + "/best/.seal") }),
            ("its seal .seal is damaged: truncated: ", { XCTAssertEqual(truncate(dir + "/best/.seal", 60), 0) }),
        ]
        for (expected, damage) in damages {
            try keep()
            try damage()
            XCTAssertTrue(kept.problem()?.hasPrefix(expected) == true, "\(kept.problem() ?? "nil") for \(expected)")
            XCTAssertThrowsError(try kept.verifiedFiles()) { error in
                XCTAssertTrue("\(error)".contains(dir + "/best") && "\(error)".contains(expected), "\(error)")
            }
        }
    }

    func testDamagedCheckpointsAreReportedAsTheyAreSkipped() throws {
        let dir = try makeTempDir(self, "ckpt")
        let c = CheckpointStore(directory: dir, keep: 3)
        for step in 1...3 { try c.save(step: step, state: Array("state \(step)".utf8)) }
        XCTAssertEqual(truncate(dir + "/step-3.ckpt", 40), 0)
        var b = try FileIO.read(dir + "/step-2.ckpt"); b[b.count - 1] ^= 1
        try FileIO.writeAtomically(b, to: dir + "/step-2.ckpt")
        var reported: [String] = []
        let latest = c.latest { path, problem in reported.append(Path.lastComponent(path) + ": " + problem) }
        XCTAssertEqual(latest?.step, 1)
        XCTAssertEqual(latest?.state, Array("state 1".utf8))
        XCTAssertEqual(reported, ["step-3.ckpt: truncated: 40 bytes, its header alone has 56",
                                  "step-2.ckpt: its SHA-256 does not match its contents (a changed byte)"])
    }
}
