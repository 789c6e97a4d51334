import Foundation
import XCTest
@testable import Pipeline
@testable import Stages

/// Stage parameters are declared once (`@Param`): decoding, defaults, the key and the
/// reference all come from that declaration.
final class ParameterTests: XCTestCase {
    func spec(_ stages: String) throws -> PipelineSpec {
        let dir = try makeTempDir(self, "params")
        try "{}\n".write(toFile: dir + "/q.jsonl", atomically: true, encoding: .utf8)
        return try PipelineSpec.parse(text: #"{"name": "p", "resources": {"models": {"a": {"backend": "openai", "url": "http://127.0.0.1:1/v1", "model": "a"}}, "retriever": {"backend": "lexical"}}, "stages": {"#
                                      + stages + "}}", file: "p.json", registry: HAPSStages.registry, baseDirectory: dir)
    }

    func errors(_ stages: String) -> [String] {
        do { _ = try spec(stages); return [] } catch let e as SpecError { return e.lines } catch { return ["unexpected: \(error)"] }
    }

    /// A spec that leaves a default out and one that writes it are the same work: one key.
    func testDefaultsAreAppliedBeforeTheKey() throws {
        let omitted = try spec(#""s": {"type": "sample", "inputs": {"questions": "q.jsonl"}, "params": {"candidates": ["a"]}}"#)
        let written = try spec(#""s": {"type": "sample", "inputs": {"questions": "q.jsonl"}, "params": {"candidates": ["a"], "budget": 3, "temperature": 0, "prompts": "standard"}}"#)
        let other = try spec(#""s": {"type": "sample", "inputs": {"questions": "q.jsonl"}, "params": {"candidates": ["a"], "budget": 2}}"#)
        let inputs = ["questions": Digest.of(string: "q")]
        func key(_ s: PipelineSpec) -> Digest { StageKey(stage: s.stages["s"]!, inputs: inputs).digest }
        XCTAssertEqual(key(omitted), key(written))
        XCTAssertNotEqual(key(omitted), key(other))
        XCTAssertEqual(omitted.stages["s"]!.paramsJSON["budget"], .number(3), "the effective parameters carry the default")
        XCTAssertNil(omitted.stages["s"]!.paramsJSON["prompts_dir"], "nothing undeclared appears")
    }

    /// A typo in an enum parameter is an error with the closest value, never a silent fallback
    /// (train-agent's difficulty used to train on "hard" whatever was written).
    func testEnumParametersRejectTyposWithTheNearestValue() {
        XCTAssertEqual(errors(#""t": {"type": "train-agent", "inputs": {"questions": "q.jsonl"}, "params": {"steps": 10, "difficulty": "hadr"}}"#),
                       ["p.json:1:253: $.stages.t.params.difficulty: unknown difficulty 'hadr'; did you mean 'hard'?"])
        XCTAssertEqual(errors(#""t": {"type": "synth-data", "params": {"split": "tset"}}"#),
                       ["p.json:1:203: $.stages.t.params.split: unknown split 'tset'; did you mean 'test'?"])
        XCTAssertEqual(errors(#""t": {"type": "sample", "inputs": {"questions": "q.jsonl"}, "params": {"candidates": ["a"], "prompts": 3}}"#),
                       ["p.json:1:256: $.stages.t.params.prompts: expected a string, found 3"])
    }

    /// Unknown names, type errors and missing parameters of one stage, all in one report.
    func testEveryParameterProblemAtOnce() {
        let e = errors(#""t": {"type": "train-decoder", "inputs": {"sequences": "q.jsonl"}, "params": {"famly": "llama", "vocab_size": "24", "steps": 1.5}}"#)
        XCTAssertEqual(e.map { $0.components(separatedBy: ": ").dropFirst().joined(separator: ": ") }, [
            "$.stages.t.params.famly: unknown parameter 'famly' for stage type 'train-decoder'; did you mean 'family'?",
            "$.stages.t.params: missing parameter 'family'",
            "$.stages.t.params.vocab_size: expected an integer, found the string \"24\"",
            "$.stages.t.params: missing parameter 'hidden_size'",
            "$.stages.t.params: missing parameter 'layers'",
            "$.stages.t.params: missing parameter 'heads'",
            "$.stages.t.params.steps: expected an integer, found 1.5",
            "$.stages.t.params: missing parameter 'lr'",
        ])
    }

    /// The declarations are what the reference and --help print: name, type, default, meaning.
    func testDeclarationsComeFromTheParamsType() throws {
        let d = try XCTUnwrap(HAPSStages.registry["train-decoder"]).parameters
        XCTAssertEqual(d.map(\.name), ["family", "vocab_size", "hidden_size", "intermediate_size", "layers", "heads", "kv_heads", "rope_theta",
                                       "tie_embeddings", "eos_token_id", "steps", "batch_size", "lr", "warmup", "schedule", "weight_decay",
                                       "max_grad_norm", "init_std", "checkpoint_every"])
        XCTAssertEqual(d.first { $0.name == "schedule" }?.summary, "schedule (one of cosine, linear, constant, default \"cosine\"): learning-rate schedule after the warm-up")
        XCTAssertEqual(d.first { $0.name == "steps" }?.summary, "steps (an integer, required): optimisation steps")
        XCTAssertEqual(d.first { $0.name == "eos_token_id" }?.summary, "eos_token_id (an integer, optional): written to config.json")
        // Groups join the stage's own parameters: score and build-sft share the candidate ones.
        let score = try XCTUnwrap(HAPSStages.registry["score"]).parameters.map(\.name)
        XCTAssertEqual(score, ["pair", "model_name_to_id", "candidates", "roles", "use_recorded"])
        XCTAssertTrue(Set(score.dropLast()).isSubset(of: try XCTUnwrap(HAPSStages.registry["build-sft"]).parameters.map(\.name)))
        // The budget's default is written once (Dialogue.defaultBudget) and read everywhere.
        XCTAssertEqual(try XCTUnwrap(HAPSStages.registry["sample"]).parameters.first { $0.name == "budget" }?.defaultValue, .number(Double(Dialogue.defaultBudget)))
    }

    /// Parameters decode outside a spec too (the CLI's and the tests' way), with the same errors.
    func testParametersFromJSON() throws {
        let p = try SynthDataStage.Params.from(["split": "valid"])
        XCTAssertEqual(p.split, .valid)
        XCTAssertEqual(p.difficulty, .hard)
        XCTAssertEqual(p.sizes, ["train": 300, "valid": 100, "test": 100])
        XCTAssertThrowsError(try SynthDataStage.Params.from(["split": "valid", "peeple": 3])) { e in
            XCTAssertEqual("\(e)", "$.params.peeple: unknown parameter 'peeple' for stage type 'Params'; did you mean 'people'?")
        }
    }

    /// The dialogue-running stages share one declaration of the dialogue's parameters, and its
    /// reply length reaches every call: rl-train's evaluations run at the stage's `max_tokens`
    /// (they ran at 256 whatever it said), greedy; its training samples at the same length.
    func testTheDialogueParametersAreSharedAndReachTheDialogue() throws {
        for type in ["sample", "rl-train", "evaluate"] {
            let names = Set(HAPSStages.registry[type]!.parameters.map(\.name))
            XCTAssertTrue(names.isSuperset(of: ["candidates", "retriever", "budget", "prompts", "max_tokens"]), type)
        }
        let p = try RLTrainStage.Params.from(["candidates": ["a"], "max_tokens": 64, "budget": 2, "prompts": "embedded"])
        let d = p.dialogue.dialogue(settings: .reference)
        XCTAssertEqual(d.settings.maxTokens, 64)
        XCTAssertEqual(d.settings.temperature, 0, "evaluations are greedy")
        XCTAssertEqual(d.budget, 2)
        XCTAssertEqual(d.prompts, PromptSet.embedded)
        XCTAssertEqual(try RLTrainStage.Params.from(["candidates": ["a"]]).dialogue.dialogue(settings: .reference).settings.maxTokens, 256)
    }
}
