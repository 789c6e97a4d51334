import XCTest
@testable import Pipeline
import Stages

/// The specs users read and run must be valid: the example in docs/spec.md and pipelines/*.json.
final class DocsTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testTheCompleteExampleInTheSpecDocValidates() throws {
        let doc = try read(root + "/docs/spec.md")
        let start = try XCTUnwrap(doc.range(of: "```json\n"))
        let end = try XCTUnwrap(doc.range(of: "\n```", range: start.upperBound..<doc.endIndex))
        let json = String(doc[start.upperBound..<end.lowerBound])
        let dir = try makeTempDir(self)
        try write("{}\n", to: dir + "/dataset/valid.jsonl")
        try write("print('train')\n", to: dir + "/scripts/train.py")
        let spec = try PipelineSpec.parse(text: json, file: "docs/spec.md", registry: .builtin, baseDirectory: dir)
        XCTAssertEqual(spec.order, ["answers", "train"])
        XCTAssertEqual(spec.stages["train"]?.ports.output, "router-checkpoint")
        XCTAssertEqual(spec.stages["train"]?.pool, "gpu")
    }

    /// Every shipped pipeline validates from the repository itself (the HotpotQA splits it
    /// carries in dataset/), as a fresh clone runs it.
    func testShippedPipelinesValidate() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: root + "/pipelines").filter { $0.hasSuffix(".json") }
        XCTAssertGreaterThanOrEqual(names.count, 4)
        for name in names {
            XCTAssertNoThrow(try PipelineSpec.load(path: root + "/pipelines/" + name, registry: HAPSStages.registry, baseDirectory: root), name)
        }
    }
}
