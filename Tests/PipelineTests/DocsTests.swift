import XCTest
@testable import Pipeline

/// The specs users read and run must be valid: the example in docs/spec.md (the shipped
/// pipelines/*.json, which use HAPS stage types, are StagesTests.ShippedPipelinesTests').
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
}
