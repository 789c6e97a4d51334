import ArgumentParser
import Pipeline
import Stages

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Score answers as the reference does: F1, precision, recall and EM per line.",
        discussion: """
            Reads JSON Lines with `prediction` and `ground_truth` and prints each line back, in \
            order, with `f1`, `precision`, `recall` and `em` added (docs/data.md, Metrics: SQuAD-style \
            normalisation, the yes/no/noanswer rule, and the reference's EM quirk that "not sure" \
            matches "no").

            Example:
              echo '{"prediction": "The Las Vegas.", "ground_truth": "Las Vegas"}' > a.jsonl
              haps-pipe metrics a.jsonl
            """)

    @Argument(help: ArgumentHelp("JSON Lines file with prediction and ground_truth.", valueName: "file.jsonl")) var file: String

    func run() throws {
        do {
            var out = ""
            for (line, v) in try JSONLines.read(file) {
                guard var members = v.objectMembers else { throw DataError(file: file, line: line, "expected a JSON object, found \(v.typeDescription)") }
                guard let p = v["prediction"]?.stringValue else { throw DataError(file: file, line: line, "missing or non-string 'prediction'") }
                guard let t = v["ground_truth"]?.stringValue else { throw DataError(file: file, line: line, "missing or non-string 'ground_truth'") }
                let m = AnswerMetrics(prediction: p, groundTruth: t)
                members.removeAll { ["f1", "precision", "recall", "em"].contains($0.key) }
                var row = members.map { ($0.key, PythonJSON.value($0.value)) }
                row += [("f1", .float(m.f1)), ("precision", .float(m.precision)), ("recall", .float(m.recall)), ("em", .int(m.em))]
                out += PythonJSON.dumps(.object(row), indent: nil) + "\n"
            }
            print(out, terminator: "")
        } catch { throw ErrorOutput.fail(error) }
    }
}

/// Options naming candidates, shared by `score` and `build-sft`.
struct CandidateOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Candidate pair preset mapping model names to ids (for rows without action_index): \(CandidateNames.presets.keys.sorted().joined(separator: ", ")).", valueName: "preset"))
    var pair: String?

    @Option(name: .customLong("model-name-to-id-json"), help: ArgumentHelp(
        "Mapping of model names to candidate ids: JSON text, as the reference's --model_name_to_id_json ('{\"Llama-3.1-8B-Instruct\": 0, \"Qwen2.5-7B-Instruct\": 1}'), or the path of a file holding it.",
        valueName: "json"))
    var modelNameToIDJSON: String?

    @Option(help: "Number of candidates K (K^roles actions).")
    var candidates: Int = 2


    func names() throws -> CandidateNames? {
        if let argument = modelNameToIDJSON {
            // JSON text (what the reference takes) when it starts like an object; else a file.
            let isText = argument.drop { $0.isWhitespace }.first == "{"
            let source = isText ? "--model-name-to-id-json" : argument
            let v: JSONValue
            do { v = try JSONParser.parse(isText ? argument : try FileIO.readString(argument)) } catch let e as JSONParser.SyntaxError {
                throw DataError(file: source, line: nil, "not JSON: \(e)")
            }
            guard let m = v.objectMembers else { throw DataError(file: source, line: nil, "expected an object of name: id") }
            var ids: [String: Int] = [:]
            for (k, id) in m {
                guard let i = id.intValue, i >= 0 else { throw DataError(file: source, line: nil, "'\(k)' maps to \(id.canonical), not a candidate id") }
                ids[k] = i
            }
            return CandidateNames(ids: ids)
        }
        return try pair.map { try CandidateNames(preset: $0) }
    }

    var space: ActionSpace { ActionSpace(candidates: max(1, candidates)) }
}

/// `--roles` of the commands that read a samples table (score, build-sft): who the actions
/// assign candidates to.
struct RoleOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The roles, comma-separated: an action gives each a candidate. One role (e.g. model) is single-role routing, K actions; rows without action_index name each role's candidate in a field of that name.",
                               valueName: "names"))
    var roles: String = ActionSpace.referenceRoles.joined(separator: ",")

    /// `--candidates` and `--roles` as the stage parameters they set.
    func parameters(_ candidates: CandidateOptions) throws -> [(String, JSONValue)] {
        let names = roles.split(separator: ",", omittingEmptySubsequences: false).map { String($0.filter { $0 != " " }) }
        guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty }), Set(names).count == names.count else {
            throw UsageError("--roles takes distinct role names, comma-separated (got '\(roles)')")
        }
        return [("candidates", .number(Double(candidates.candidates))), ("roles", .array(names.map(JSONValue.string)))]
    }
}

struct Score: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
        commandName: "score",
        abstract: "Summarise a samples table (reference baseline.jsonl): per-action means, best fixed action, oracle, random.",
        discussion: """
            Metrics are recomputed from `answer` and `ground_truth`; rows whose recorded `f1` \
            disagrees are counted and reported. Means are over questions that have every action.

            Example:
              haps-pipe score baseline.jsonl
              haps-pipe score baseline.jsonl --json --scores scores.jsonl
              haps-pipe score baseline.jsonl --questions dataset/valid.jsonl   # + a breakdown by question type
              haps-pipe score routing.jsonl --candidates 3 --roles model       # single-role routing: 3 actions
            """ + "\n\n" + flags.help)
    }

    /// The score stage's parameters as flags.
    static let flags = StageFlags(stageType: "score", setByCommand: [("pair", "--pair"), ("model_name_to_id", "--model-name-to-id-json"),
                                                                    ("candidates", "--candidates"), ("roles", "--roles")])

    @OptionGroup var candidateOptions: CandidateOptions
    @OptionGroup var roleOptions: RoleOptions
    @Flag(help: "Print the summary as JSON.") var json = false
    @Option(help: ArgumentHelp("Also write the question × action table here (JSON Lines).", valueName: "file")) var scores: String?
    @Option(help: ArgumentHelp("The sampled questions (HotpotQA JSON or JSON Lines): adds a breakdown by question type.", valueName: "file")) var questions: String?
    /// The operand and the stage flags, in any order (one capture: ArgumentParser would refuse
    /// a stage flag written before a declared operand).
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Samples table (JSON Lines, reference baseline format), and any stage parameters.",
                                                           valueName: "baseline.jsonl"))
    var arguments: [String] = []

    func run() throws {
        do {
            let (given, operands) = try Self.flags.given(arguments, positionals: 1)
            guard let file = operands.first else { throw UsageError("give the samples table (baseline.jsonl)") }
            let params = try ScoreStage.Params.from(.object(given + (try roleOptions.parameters(candidateOptions))))
            var t = try ScoreStage.table(baseline: file, space: params.names.space, names: try candidateOptions.names(), useRecorded: params.use_recorded)
            if let questions { t.breakDown(byType: try ScoreStage.questionTypes(questions)) }
            if let scores { try FileIO.writeAtomically(t.jsonLines, to: scores) }
            print(json ? t.summaryJSON.pretty : t.summaryText, terminator: json ? "\n" : "")
        } catch { throw ErrorOutput.fail(error) }
    }
}

struct BuildSFTCommand: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
        commandName: "build-sft",
        abstract: "Build the router's SFT data from a baseline table, exactly as the reference's build_sft.",
        discussion: """
            Flags mirror the reference script's (in kebab-case); the output is the same JSON array \
            of {question, reward, output}, byte for byte, for the same input and seed.

            Example:
              haps-pipe build-sft --baseline baseline.jsonl --output sft.json --tie-policy all --balance smart_oversample --smart-target 40
            """ + "\n\n" + flags.help)
    }

    /// build-sft's parameters as flags (the reference's build_sft.py names, in kebab case).
    static let flags = StageFlags(stageType: "build-sft", setByCommand: [("pair", "--pair"), ("model_name_to_id", "--model-name-to-id-json"),
                                                                        ("candidates", "--candidates"), ("roles", "--roles")])

    @Option(help: ArgumentHelp("Baseline rows (reference baseline.jsonl format).", valueName: "file")) var baseline: String
    @Option(help: ArgumentHelp("Where to write the SFT JSON array.", valueName: "file")) var output: String
    @OptionGroup var candidateOptions: CandidateOptions
    @OptionGroup var roleOptions: RoleOptions
    @Argument(parsing: .allUnrecognized, help: .hidden) var stageArguments: [String] = []

    func run() throws {
        do {
            let given = try Self.flags.given(stageArguments).params
            let params = try BuildSFTStage.Params.from(.object(given + (try roleOptions.parameters(candidateOptions))))
            let (rows, report) = try BuildSFT.build(baseline: baseline, space: params.names.space, names: try candidateOptions.names(),
                                                    options: BuildSFTStage.options(params, seed: PipelineSpec.defaultSeed))
            for line in report.lines { print(line) }
            try FileIO.writeAtomically(BuildSFT.json(rows), to: output)
            print("wrote \(output)")
        } catch { throw ErrorOutput.fail(error) }
    }
}
