import Foundation
import XCTest
import TestSupport

/// `haps-pipe generate` on the transformers-recorded tiny models.
final class GenerateCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/engine").path

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func testGreedyJSONMatchesTransformersAndStopsAtEOSUnlessTold() throws {
        let dir = try makeTempDirectory(self)
        let model = GenerateCommandTests.fixtures + "/llama"
        let r = try CLI.run(["generate", "--model", model, "--prompt-ids", "0,17,42,5,88,23,61,9", "--max-new-tokens", "12", "--json"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try json(r.stdout)
        // transformers' greedy continuation of this prompt (reference.safetensors greedy.0) ends in EOS (1).
        XCTAssertEqual(out["ids"] as? [Int], [0, 26, 31, 77, 35, 89, 89, 0, 88, 1])
        XCTAssertEqual((out["logprobs"] as? [Double])?.count, 10)
        XCTAssertEqual(out["finish_reason"] as? String, "stop")
        let ignoring = try CLI.run(["generate", "--model", model, "--prompt-ids", "0,17,42,5,88,23,61,9", "--max-new-tokens", "12", "--ignore-eos"], in: dir)
        XCTAssertEqual(ignoring.stdout, "0,26,31,77,35,89,89,0,88,1,0,13\n")
    }

    func testSamplingIsReproducibleBySeedAndLoRAChangesTheOutput() throws {
        let dir = try makeTempDirectory(self)
        let model = GenerateCommandTests.fixtures + "/qwen2"
        let args = ["generate", "--model", model, "--prompt-ids", "0,3,77,12", "--max-new-tokens", "8", "--ignore-eos", "--temperature", "1", "--top-p", "0.9", "--json"]
        let a = try json(try CLI.run(args + ["--seed", "5"], in: dir).stdout)
        let b = try json(try CLI.run(args + ["--seed", "5"], in: dir).stdout)
        XCTAssertEqual(a["ids"] as? [Int], b["ids"] as? [Int])
        let seeds = try (6..<12).map { try json(try CLI.run(args + ["--seed", "\($0)"], in: dir).stdout)["ids"] as? [Int] }
        XCTAssertGreaterThan(Set(seeds.compactMap { $0 }).count, 1, "other seeds draw other tokens")
        for lp in (a["logprobs"] as? [Double]) ?? [] { XCTAssertLessThanOrEqual(lp, 0) }
        // The LoRA update of the fixture, written as A and B.
        let lora = dir + "/update.safetensors"
        let ref = GenerateCommandTests.fixtures + "/qwen2/reference.safetensors"
        let py = """
            import json, struct, sys
            data = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', data[:8])[0]; h = json.loads(data[8:8+n])
            out = {}; blobs = b''; header = {}
            for name, new in (('lora.A', 'A'), ('lora.B', 'B')):
                e = h[name]; b = data[8+n+e['data_offsets'][0]:8+n+e['data_offsets'][1]]
                header[new] = {'dtype': 'F32', 'shape': e['shape'], 'data_offsets': [len(blobs), len(blobs) + len(b)]}; blobs += b
            hb = json.dumps(header).encode(); hb += b' ' * ((8 - (8 + len(hb)) % 8) % 8)
            open(sys.argv[2], 'wb').write(struct.pack('<Q', len(hb)) + hb + blobs)
            """
        let p = try Python.run(py, arguments: [ref, lora])
        XCTAssertEqual(p.status, 0, p.stderr)
        let greedy = ["generate", "--model", model, "--prompt-ids", "0,3,77,12", "--max-new-tokens", "8", "--ignore-eos"]
        let plain = try CLI.run(greedy, in: dir).stdout
        let patched = try CLI.run(greedy + ["--lora", lora, "--alpha", "0.5", "--layers", "1"], in: dir)
        XCTAssertEqual(patched.status, 0, patched.stderr)
        XCTAssertNotEqual(plain, patched.stdout)
    }

    func testBadArgumentsAreClearErrors() throws {
        let dir = try makeTempDirectory(self)
        let model = GenerateCommandTests.fixtures + "/llama"
        let both = try CLI.run(["generate", "--model", model], in: dir)
        XCTAssertEqual(both.status, 2)
        XCTAssertTrue(both.stderr.contains("give either --prompt TEXT or --prompt-ids 1,2,3"), both.stderr)
        let noTokenizer = try CLI.run(["generate", "--model", model, "--prompt", "hi"], in: dir)
        XCTAssertTrue(noTokenizer.stderr.contains("has no tokenizer.json: give --prompt-ids"), noTokenizer.stderr)
        let outside = try CLI.run(["generate", "--model", model, "--prompt-ids", "0,500"], in: dir)
        XCTAssertNotEqual(outside.status, 0)
        XCTAssertTrue(outside.stderr.contains("token id 500 is outside the vocabulary (96)"), outside.stderr)
        let missing = try CLI.run(["generate", "--model", dir, "--prompt-ids", "0"], in: dir)
        XCTAssertTrue(missing.stderr.contains("config.json: cannot read the model config"), missing.stderr)
    }
}

final class EmbedCommandTests: XCTestCase {
    func testOneArrayPerLineAndErrorsNameTheLine() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let model = root + "/models/all-MiniLM-L6-v2"
        guard FileManager.default.fileExists(atPath: model + "/model.safetensors") else { return XCTFail("run scripts/fetch-models.sh") }
        let dir = try makeTempDirectory(self)
        try "\"Paris is in France.\"\n\n\"Berlin\"\n".write(toFile: dir + "/t.jsonl", atomically: true, encoding: .utf8)
        let r = try CLI.run(["embed", "--model", model, "t.jsonl"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        for line in lines {
            let v = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Double])
            XCTAssertEqual(v.count, 384)
            XCTAssertEqual(v.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-4)
        }
        try "\"ok\"\n{\"not\": \"a string\"}\n".write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        let bad = try CLI.run(["embed", "--model", model, "bad.jsonl"], in: dir)
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("bad.jsonl:2: expected a JSON string"), bad.stderr)
    }
}
