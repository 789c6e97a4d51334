import Foundation
import XCTest
@testable import NN

final class SafeTensorsTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/engine").path

    func temp(_ name: String) -> String { NSTemporaryDirectory() + "st-\(UUID().uuidString)-\(name)" }

    func testHalfPrecisionFilesFromTorchReadAsTheirFloat32Values() throws {
        let f32 = try SafeTensorsFile(path: SafeTensorsTests.fixtures + "/llama/model.safetensors")
        let bf16 = try SafeTensorsFile(path: SafeTensorsTests.fixtures + "/llama-bf16.safetensors")
        let f16 = try SafeTensorsFile(path: SafeTensorsTests.fixtures + "/llama-f16.safetensors")
        XCTAssertEqual(Set(f32.names), Set(bf16.names))
        for name in f32.names {
            let full = try f32.tensor(name)
            XCTAssertEqual(bf16.entries[name]?.dtype, .bf16)
            // torch rounds to nearest even, as HalfFloat does: the bits must agree exactly.
            XCTAssertEqual(try bf16.tensor(name).data, full.data.map { HalfFloat.bf16ToFloat(HalfFloat.floatToBF16($0)) }, name)
            XCTAssertEqual(try f16.tensor(name).data, full.data.map { HalfFloat.f16ToFloat(HalfFloat.floatToF16($0)) }, name)
        }
    }

    func testHalfConversionsAtTheEdges() {
        for v: Float in [0, -0, 1, -2.5, 65504, 6.1035156e-05, 5.9604645e-08, .infinity, -.infinity] {
            XCTAssertEqual(HalfFloat.f16ToFloat(HalfFloat.floatToF16(v)), v, "\(v)")
        }
        XCTAssertTrue(HalfFloat.f16ToFloat(0x7E00).isNaN)
        XCTAssertTrue(HalfFloat.bf16ToFloat(HalfFloat.floatToBF16(.nan)).isNaN)
        XCTAssertEqual(HalfFloat.floatToBF16(1.00390625), 0x3F80, "a tie rounds to even")
        XCTAssertEqual(HalfFloat.floatToBF16(1.01171875), 0x3F82, "a tie rounds to even, upwards")
    }

    func testWriteThenReadRoundTripsInEveryFloatType() throws {
        let t = Tensor(shape: [2, 3], data: [1, -2, 3.5, 0.25, -0.125, 100])
        for dtype in [SafeTensorsDType.f32, .f16, .bf16] {
            let path = temp("rt.safetensors")
            try SafeTensorsFile.write(["w": t, "b": Tensor(shape: [3], data: [1, 2, 3])], dtype: dtype, metadata: ["format": "pt"], to: path)
            let f = try SafeTensorsFile(path: path)
            XCTAssertEqual(try f.tensor("w"), t, "\(dtype)")
            XCTAssertEqual(f.metadata["format"], "pt")
            XCTAssertEqual(f.entries["w"]?.dtype, dtype)
            let header = Int(try Data(contentsOf: URL(fileURLWithPath: path)).prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            XCTAssertEqual((8 + header) % 8, 0, "data starts 8-byte aligned")
        }
    }

    func testDamagedFilesAreRefusedByName() throws {
        let path = temp("bad.safetensors")
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try SafeTensorsFile(path: path)) { XCTAssertTrue("\($0)".hasSuffix("too short to be a safetensors file (3 bytes)"), "\($0)") }
        try SafeTensorsFile.write(["w": Tensor(shape: [4], data: [1, 2, 3, 4])], to: path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes.removeLast(4)  // a truncated download
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try SafeTensorsFile(path: path)) {
            XCTAssertEqual("\($0)", "\(path): tensor w runs past the end of the file (truncated download?)")
        }
        XCTAssertThrowsError(try SafeTensorsFile(path: SafeTensorsTests.fixtures + "/llama/model.safetensors").tensor("nope")) {
            XCTAssertTrue("\($0)".hasSuffix("no tensor named nope"))
        }
    }
}
