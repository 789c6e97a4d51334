import XCTest
@testable import Pipeline

/// What names of stored results mean (`RefLookup`, `Store.results`), and the store's other
/// lookups the tool's commands use: experiments by name, the last failures of a pipeline,
/// copies out of the store.
final class RefLookupTests: XCTestCase {
    var dir = ""
    var store: Store!

    override func setUpWithError() throws {
        dir = try makeTempDir(self)
        store = try Store(root: dir + "/store")
    }

    /// Runs pipeline `name` with one `text-source` stage `stage` writing `text`; its output.
    @discardableResult
    func source(_ name: String, stage: String = "src", text: String, experiment: String? = nil) throws -> Digest {
        let spec = try load(#"{"name": "\#(name)", "stages": {"\#(stage)": {"type": "text-source", "params": {"text": "\#(text)"}}}}"#, dir: dir)
        var options = RunOptions()
        options.experiment = experiment.map { ($0, []) }
        let run = try runPipeline(spec, store: store, options: options)
        return try XCTUnwrap(run.result(stage)?.output, "\(run.results)")
    }

    func code(_ body: () throws -> Void) -> StoreError.Code? {
        do { try body(); return nil } catch let e as StoreError { return e.code } catch { XCTFail("\(error)"); return nil }
    }

    func testAStageIsFoundByNameByPipelineSlashStageAndByItsPipeline() throws {
        let out = try source("a", text: "hello")
        try source("a", stage: "other", text: "x")
        let byName = try XCTUnwrap(try RefLookup.find("src", pipeline: nil, in: store))
        XCTAssertEqual(byName.pipeline, "a")
        XCTAssertEqual(byName.stage, "src")
        XCTAssertEqual(byName.ref.output, out)
        XCTAssertEqual(try RefLookup.find("a/src", pipeline: nil, in: store)?.ref.output, out)
        XCTAssertEqual(try RefLookup.find("src", pipeline: "a", in: store)?.ref.output, out)
        XCTAssertNil(try RefLookup.find("src", pipeline: "b", in: store), "the pipeline limits the search")
        XCTAssertNil(try RefLookup.find("b/src", pipeline: nil, in: store))
        XCTAssertEqual(try RefLookup.artifact("src", pipeline: nil, in: store), out)
    }

    func testAnArtifactIsFoundByItsDigestOrAPrefixOfSixHexDigits() throws {
        let out = try source("a", text: "hello")
        XCTAssertEqual(try RefLookup.artifact(out.hex, pipeline: nil, in: store), out)
        XCTAssertEqual(try RefLookup.artifact(String(out.hex.prefix(6)), pipeline: nil, in: store), out)
        XCTAssertEqual(try RefLookup.artifact(String(out.hex.prefix(8)).uppercased(), pipeline: nil, in: store), out)
        XCTAssertNil(try RefLookup.artifactIfAny(String(out.hex.prefix(5)), pipeline: nil, in: store), "five digits are not a digest")
    }

    func testAStageSeveralPipelinesHoldIsAmbiguousUnlessTheyHoldTheSameResult() throws {
        let a = try source("a", text: "one")
        let b = try source("b", text: "two")
        XCTAssertEqual(code { _ = try RefLookup.find("src", pipeline: nil, in: self.store) }, .ambiguous)
        XCTAssertEqual(code { _ = try RefLookup.artifact("src", pipeline: nil, in: self.store) }, .ambiguous)
        XCTAssertThrowsError(try RefLookup.find("src", pipeline: nil, in: store)) { error in
            XCTAssertEqual("\(error)", "stage 'src' exists in several pipelines (a, b); write PIPELINE/src")
        }
        XCTAssertEqual(try RefLookup.artifact("a/src", pipeline: nil, in: store), a)
        XCTAssertEqual(try RefLookup.artifact("src", pipeline: "b", in: store), b)
        // A sweep's pipeline (NAME~SWEEP) holding the same result as a spec's is no ambiguity:
        // the spec's own pipeline is named, though the sweep's sorts first here.
        let shared = try Store(root: try makeTempDir(self, "shared"))
        let spec = try load(#"{"name": "p", "stages": {"src": {"type": "text-source", "params": {"text": "same"}}}}"#, dir: dir)
        var swept = spec
        swept.name = "o~s"
        try runPipeline(swept, store: shared)
        try runPipeline(spec, store: shared)
        XCTAssertEqual(shared.allRefs().map(\.pipeline), ["o~s", "p"])
        let found = try XCTUnwrap(try RefLookup.find("src", pipeline: nil, in: shared))
        XCTAssertEqual(found.pipeline, "p", "the spec's own pipeline comes before a sweep's")
    }

    func testNothingMatchingIsNotFoundAndADamagedRefSaysSo() throws {
        try source("a", text: "hello")
        XCTAssertNil(try RefLookup.find("nope", pipeline: nil, in: store))
        XCTAssertNil(try RefLookup.artifactIfAny("nope", pipeline: nil, in: store))
        XCTAssertThrowsError(try RefLookup.artifact("nope", pipeline: nil, in: store)) { error in
            XCTAssertEqual((error as? StoreError)?.code, .notFound)
            XCTAssertEqual("\(error)", "'nope' is neither a stage with a stored result nor an artifact digest in \(self.store.root)")
        }
        try write("{not json", to: store.root + "/refs/a/src.json")
        XCTAssertThrowsError(try RefLookup.artifact("src", pipeline: nil, in: store)) { error in
            XCTAssertEqual((error as? StoreError)?.code, .badMetadata)
            XCTAssertTrue("\(error)".hasPrefix("the stored result of 'src' cannot be read: its ref file \(self.store.root)/refs/a/src.json is damaged"), "\(error)")
        }
    }

    /// A spec's input may name another pipeline's result: `Store.results` resolves it with its kind.
    func testASpecInputNamesAStoredResult() throws {
        let out = try source("a", text: "hello")
        let found = try XCTUnwrap(try store.results.lookup("a/src"))
        XCTAssertEqual(found.digest, out)
        XCTAssertEqual(found.kind, "text")
        XCTAssertNil(try store.results.lookup("a/nope"))
        XCTAssertEqual(store.results.names(), ["a/src"])
        let spec = try PipelineSpec.parse(text: #"{"name": "c", "stages": {"up": {"type": "upper", "inputs": {"text": "a/src"}}}}"#,
                                          file: "c.json", registry: testRegistry, baseDirectory: dir, stored: store.results)
        XCTAssertEqual(spec.stages["up"]?.inputs.first?.source, .artifact(out))
    }
}

extension RefLookupTests {
    func testExperimentsAreFoundByNameAndPipeline() throws {
        try source("a", text: "one", experiment: "spec")
        try source("b", text: "two", experiment: "spec")
        try source("c", text: "three", experiment: "other")  // (runs of one pipeline in one second share a record)
        XCTAssertEqual(code { _ = try self.store.experiment(named: "spec", pipeline: nil) }, .ambiguous)
        XCTAssertEqual(try store.experiment(named: "spec", pipeline: "a").pipeline, "a")
        XCTAssertEqual(try store.experiment(named: "other", pipeline: nil).pipeline, "c")
        XCTAssertThrowsError(try store.experiment(named: "othre", pipeline: "c")) { error in
            XCTAssertEqual((error as? StoreError)?.code, .notFound)
            XCTAssertEqual("\(error)", "no experiment 'othre'; did you mean 'other'?")
        }
        XCTAssertEqual(try store.experiments(pipeline: "c").map(\.name), ["other"])
        XCTAssertThrowsError(try store.experiments(pipeline: "d")) { error in
            XCTAssertEqual((error as? StoreError)?.code, .notFound)
            XCTAssertEqual("\(error)", "no experiments of pipeline 'd' in \(self.store.root); did you mean 'a'?")
        }
        XCTAssertEqual(try store.experiments(pipeline: nil).count, 3)
    }

    func testTheLastFailureOfAKeyIsItsLatestAttempts() throws {
        let spec = try load(#"{"name": "f", "stages": {"bad": {"type": "failing"}}}"#, dir: dir, registry: lookupRegistry)
        let run = try runPipeline(spec, store: store)
        let key = try XCTUnwrap(run.result("bad")?.key)
        let failures = store.lastFailures(pipeline: "f")
        XCTAssertEqual(failures.count, 1)
        XCTAssertEqual(failures[key]?.run, run.runID)
        XCTAssertEqual(failures[key]?.error.contains("the first line"), true, "\(failures)")
        XCTAssertEqual(failures[key]?.error.contains("the second"), false, "only the error's first line")
        XCTAssertTrue(store.lastFailures(pipeline: "g").isEmpty)
        let out = try source("a", text: "x")
        XCTAssertEqual(store.resultNames()[out], "a/src")
    }

    func testAnArtifactIsCopiedOutAndPathsInsideTheStoreAreRecognised() throws {
        let out = try source("a", text: "hello")
        try store.copy(artifact: out, to: dir + "/copy")
        XCTAssertEqual(try read(dir + "/copy/text.txt"), "hello")
        XCTAssertEqual(FileIO.status(dir + "/copy/text.txt").map { $0.permissions & 0o777 }, 0o644, "a writable copy")
        XCTAssertNil(store.containing(dir + "/copy"))
        XCTAssertEqual(store.containing(store.root + "/new/dir"), store.root, "a path yet to exist inside the store")
        XCTAssertEqual(store.containing(store.root), store.root)
        XCTAssertNil(store.containing(dir + "/store-other"))
    }
}

/// A stage that fails with a two-line error.
private struct Failing: StageType {
    struct Failure: Error, CustomStringConvertible { var description: String { "the first line\nthe second" } }
    struct Params: StageParameters {}
    static let name = "failing"
    static let version = 1
    static func ports(_ p: Params) -> StagePorts { StagePorts(inputs: [], output: "text") }
    static func run(_ p: Params, _ c: StageContext) throws { throw Failure() }
}

private let lookupRegistry = StageRegistry([TextSource.self, Failing.self])
