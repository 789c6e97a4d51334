import Foundation
import XCTest
import Pipeline
import Stages
import TestSupport

/// The pipelines users run must be valid (the example in docs/spec.md is PipelineTests.DocsTests').
final class ShippedPipelinesTests: XCTestCase {
    /// Every shipped pipeline validates from the repository itself (the HotpotQA splits it
    /// carries in dataset/), as a fresh clone runs it.
    func testShippedPipelinesValidate() throws {
        let root = Repository.root
        let names = try FileManager.default.contentsOfDirectory(atPath: root + "/pipelines").filter { $0.hasSuffix(".json") }
        XCTAssertGreaterThanOrEqual(names.count, 4)
        for name in names {
            XCTAssertNoThrow(try PipelineSpec.load(path: root + "/pipelines/" + name, registry: HAPSStages.registry, baseDirectory: root), name)
        }
    }
}
