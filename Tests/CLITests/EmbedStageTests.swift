import Foundation
import XCTest
import TestSupport

/// The `embed` stage on the shipped routing fixture: one embedding serves every router and the
/// evaluation as embedding in each stage did, a question it lacks is named, and an interrupted
/// embedding resumes to the bits of an uninterrupted one.
final class EmbedStageTests: XCTestCase {
    var dir = ""
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    override func setUpWithError() throws {
        dir = try makeTempDirectory(self)
        guard FileManager.default.fileExists(atPath: Self.root + "/models/all-MiniLM-L6-v2/config.json") else {
            throw XCTSkip("models/all-MiniLM-L6-v2 is missing: run scripts/fetch-models.sh")
        }
    }

    /// A spec over the fixture: the two imports, `stages` (JSON members) after them.
    func spec(_ stages: String) throws -> String {
        let routing = Self.root + "/dataset/routing", encoder = Self.root + "/models/all-MiniLM-L6-v2"
        let text = """
        {"name": "emb", "stages": {
          "train": {"type": "import", "inputs": {"data": "\(routing)/long.csv"}},
          "test": {"type": "import", "inputs": {"data": "\(routing)/routerbench.csv"}, "params": {"layout": "routerbench"}},
          \(stages.replacingOccurrences(of: "ENCODER", with: encoder))
        }}
        """
        try text.write(toFile: dir + "/emb.json", atomically: true, encoding: .utf8)
        return "emb.json"
    }

    func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func testOneEmbeddingServesEveryRouterAndTheEvaluation() throws {
        let file = try spec("""
          "embed": {"type": "embed", "inputs": {"encoder": "ENCODER", "train": "train", "test": "test"}},
          "knn_shared": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed"}, "params": {"method": "knn", "k": 3}},
          "knn_own": {"type": "route-table", "inputs": {"scores": "train", "encoder": "ENCODER"}, "params": {"method": "knn", "k": 3}},
          "mf_shared": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed"}, "params": {"method": "mf", "steps": 50}},
          "mf_own": {"type": "route-table", "inputs": {"scores": "train", "encoder": "ENCODER"}, "params": {"method": "mf", "steps": 50}},
          "evaluate": {"type": "evaluate", "inputs": {"scores": "test", "valid_scores": "train", "embeddings": "embed",
                       "knn_shared": "knn_shared", "knn_own": "knn_own", "mf_shared": "mf_shared", "mf_own": "mf_own"}, "params": {"resamples": 200}},
          "evaluate_own": {"type": "evaluate", "inputs": {"scores": "test", "valid_scores": "train", "encoder": "ENCODER",
                           "knn_shared": "knn_shared", "mf_shared": "mf_shared"}, "params": {"resamples": 200}}
        """)
        let r = try CLI.run(["run", file, "--store", "s", "--plain"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        let summary = try CLI.run(["show", "emb/embed", "--store", "s", "--file", "summary.json"], in: dir).stdout
        let s = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(summary.utf8)) as? [String: Any], summary)
        XCTAssertEqual(s["questions"] as? Int, 11, "the two layouts hold the same 12 prompts, two of them with one text: each text embedded once")
        XCTAssertEqual(s["dimension"] as? Int, 384)
        XCTAssertEqual((s["encoder"] as? String)?.count, 64, "the encoder's digest: \(summary)")
        // Each router chooses alike whether it read the embed stage's embeddings or embedded itself,
        // and evaluate routes alike from either.
        for stage in ["evaluate", "evaluate_own"] {
            let rows = try jsonLines(try CLI.run(["show", "emb/" + stage, "--store", "s", "--file", "per_question.jsonl"], in: dir).stdout)
            XCTAssertEqual(rows.count, 12)
            for row in rows where stage == "evaluate" {
                func action(_ name: String) -> Int? { (row[name] as? [String: Any])?["action"] as? Int }
                XCTAssertNotNil(action("knn_shared"), "\(row)")
                XCTAssertEqual(action("knn_shared"), action("knn_own"), "\(row)")
                XCTAssertEqual(action("mf_shared"), action("mf_own"), "\(row)")
            }
        }
        let shared = try CLI.run(["show", "emb/evaluate", "--store", "s", "--file", "results.json"], in: dir).stdout
        let own = try CLI.run(["show", "emb/evaluate_own", "--store", "s", "--file", "results.json"], in: dir).stdout
        func f1(_ text: String, _ row: String) throws -> Double? {
            let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])["rows"] as? [[String: Any]]
            return rows?.first { $0["name"] as? String == row }?["f1_mean"] as? Double
        }
        for row in ["knn_shared", "mf_shared"] { XCTAssertEqual(try f1(shared, row), try f1(own, row), row) }
        XCTAssertEqual(try f1(shared, "knn_shared"), try f1(shared, "knn_own"))
    }

    /// `"engine": "torch"`: the worker embeds (here on CPU torch; on a GPU in bench/gpu), and
    /// the routers choose as they do on this program's embeddings.
    func testTheTorchEngineEmbedsForTheSameChoices() throws {
        _ = try TorchPython.require()
        let file = try spec("""
          "embed": {"type": "embed", "inputs": {"encoder": "ENCODER", "train": "train", "test": "test"}},
          "embed_torch": {"type": "embed", "inputs": {"encoder": "ENCODER", "train": "train", "test": "test"}, "params": {"engine": "torch", "device": "cpu"}},
          "knn": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed"}, "params": {"method": "knn", "k": 3}},
          "knn_torch": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed_torch"}, "params": {"method": "knn", "k": 3}},
          "evaluate": {"type": "evaluate", "inputs": {"scores": "test", "valid_scores": "train", "embeddings": "embed_torch",
                       "knn": "knn", "knn_torch": "knn_torch"}, "params": {"resamples": 200}}
        """)
        let r = try CLI.run(["run", file, "--store", "s", "--plain"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("embed_torch: torch engine: torch"), r.stderr)
        let rows = try jsonLines(try CLI.run(["show", "emb/evaluate", "--store", "s", "--file", "per_question.jsonl"], in: dir).stdout)
        XCTAssertEqual(rows.count, 12)
        for row in rows {
            func action(_ name: String) -> Int? { (row[name] as? [String: Any])?["action"] as? Int }
            XCTAssertNotNil(action("knn"))
            XCTAssertEqual(action("knn"), action("knn_torch"), "\(row)")
        }
    }

    func testAQuestionTheEmbeddingsLackIsNamed() throws {
        try #"{"question": "what is 2 + 2?"}"#.appending("\n").write(toFile: dir + "/few.jsonl", atomically: true, encoding: .utf8)
        let file = try spec("""
          "embed": {"type": "embed", "inputs": {"encoder": "ENCODER", "few": "few.jsonl"}},
          "knn": {"type": "route-table", "inputs": {"scores": "train", "embeddings": "embed"}, "params": {"method": "knn"}}
        """)
        let r = try CLI.run(["run", file, "--store", "s", "--plain"], in: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("input 'embeddings' has no embedding of 12 of the 12 questions, the first \""), r.stderr)
        XCTAssertTrue(r.stderr.contains("give the embed stage the table this stage reads"), r.stderr)
        let nothing = try spec(#""embed": {"type": "embed", "inputs": {"encoder": "ENCODER"}}"#)
        let e = try CLI.run(["run", nothing, "--store", "s", "--plain"], in: dir)
        XCTAssertTrue(e.stderr.contains("embed has nothing to embed"), e.stderr)
    }

    func testAnInterruptedEmbeddingResumesToTheSameBits() throws {
        let file = try spec(#""embed": {"type": "embed", "cpus": 2, "inputs": {"encoder": "ENCODER", "train": "train"}, "params": {"chunk": 5}}"#)
        let clean = try CLI.run(["run", file, "--store", "clean", "--plain", "-j", "2"], in: dir)
        XCTAssertEqual(clean.status, 0, clean.stderr)
        let killed = try CLI.run(["run", file, "--store", "s", "--plain", "-j", "2"], in: dir, environment: ["HAPS_TEST_KILL_AT": "chunks/1/5"])
        XCTAssertEqual(killed.status, SIGKILL, "killed after the second of three chunks: \(killed.stderr)")
        // Resumed on one thread: the bits are the two-thread run's all the same.
        let resumed = try CLI.run(["run", file, "--store", "s", "--plain", "-j", "1"], in: dir)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed 2 of 3 chunks from an interrupted run"), resumed.stderr)
        func digest(_ store: String) throws -> String {
            let shown = try CLI.run(["show", "emb/embed", "--json", "--store", store], in: dir)
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])?["digest"] as? String, shown.stderr)
        }
        XCTAssertEqual(try digest("s"), try digest("clean"))
    }
}
