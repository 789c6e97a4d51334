import XCTest
@testable import Pipeline

final class ProgressDisplayTests: XCTestCase {
    func capture(interactive: Bool, _ body: (ProgressDisplay) -> Void) throws -> String {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let display = ProgressDisplay(interactive: interactive, output: fds[1])
        body(display)
        display.runFinished()
        close(fds[1])
        let out = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile()
        return String(decoding: out, as: UTF8.self)
    }

    func testPlainModeWritesTimestampedLines() throws {
        let text = try capture(interactive: false) { d in
            d.stageStarted("score", reasons: ["params.budget changed: 3 → 4"], progress: ProgressReporter())
            d.stageFinished(StageResult(stage: "score", outcome: .ran, key: nil, output: Digest.of(string: "x"), kind: "files", seconds: 1.25, reasons: []))
        }
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, text)
        XCTAssertTrue(lines.allSatisfy { $0.range(of: #"^\[\d\d:\d\d:\d\d\] "#, options: .regularExpression) != nil }, text)
        XCTAssertTrue(lines[0].hasSuffix("start  score (params.budget changed: 3 → 4)"), lines[0])
        XCTAssertTrue(lines[1].hasSuffix("✓ score            ran in 1.2s → \(Digest.of(string: "x").short)"), lines[1])
        XCTAssertFalse(text.contains("\u{1B}["), "no terminal escapes in plain mode")
    }

    func testTerminalModeRedrawsBarsInPlace() throws {
        let text = try capture(interactive: true) { d in
            let p = ProgressReporter()
            p.setTotal(10)
            p.advance(by: 5)
            d.stageStarted("sample", reasons: [], progress: p)
            d.message("sample", "hello")
        }
        XCTAssertTrue(text.contains("▸ sample           [##########..........]  5/10 items  0s elapsed\n"), text.debugDescription)
        XCTAssertTrue(text.contains("\u{1B}[1A\u{1B}[J"), "the bar is cleared before a message and redrawn")
    }

    func testProgressFigures() {
        let s = ProgressReporter.Snapshot(total: 100, completed: 40, status: "q17", unit: "items", elapsed: 75, rate: 2)
        XCTAssertEqual(ProgressDisplay.describe(s, bar: false), "40/100 items  2.0/s  ETA 30s  1m15s elapsed  q17")
    }
}
