import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Pipeline
import Stages

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show which stages a run would execute, and why (no stage runs).",
        discussion: "A stage runs when no cached result has its key; the reasons say which parameter, input or version differs from its last result.")

    @OptionGroup var specOptions: SpecOptions
    @OptionGroup var storeOptions: StoreOptions
    @Option(parsing: .singleValue, help: ArgumentHelp("Treat this stage as forced (repeatable).", valueName: "stage")) var force: [String] = []
    @Option(parsing: .singleValue, help: ArgumentHelp("Plan only this stage and what it needs (repeatable).", valueName: "stage")) var until: [String] = []
    @Flag(help: "Print the plan as JSON.") var json = false

    func run() throws {
        do {
            let store = try storeOptions.open()
            let spec = try specOptions.load(store: store)
            let plan = try Planner.plan(spec, selection: Planner.selection(spec, until: until), forced: Set(force),
                                        lookups: .store(store, pipeline: spec.name))
            if json {
                print(JSONValue.array(plan.map { e in
                    var o: [String: JSONValue] = ["stage": .string(e.stage), "action": .string(Plan.label(e.action)),
                                                  "reasons": .array(e.reasons.map(JSONValue.string))]
                    if let k = e.key { o["key"] = .string(k.hex) }
                    return .object(o)
                }).pretty)
                return
            }
            let running = plan.filter { $0.action == .run || $0.action == .dependsOnRun }.count
            let blocked = plan.filter { $0.action == .missingInput }.count
            print("\(spec.name): \(running) of \(plan.filter { $0.action != .excluded }.count) stages to run"
                  + (blocked == 0 ? "" : "; \(blocked) cannot run until their inputs exist (run --keep-going runs the others)"))
            for e in plan {
                print("  \(Plan.symbol(e.action)) \(pad(e.stage, max(16, e.stage.count))) \(Plan.label(e.action))")
                for r in e.reasons where e.action != .excluded { print("        - \(r)") }
            }
        } catch { throw ErrorOutput.fail(error) }
    }

    static func label(_ a: PlanEntry.Action) -> String {
        switch a {
        case .cached: return "cached"
        case .run: return "will run"
        case .dependsOnRun: return "will run unless its inputs come out unchanged"
        case .excluded: return "excluded"
        case .missingInput: return "cannot run until its inputs exist"
        }
    }
    static func symbol(_ a: PlanEntry.Action) -> String {
        switch a { case .cached: return "✓"; case .run: return "▸"; case .dependsOnRun: return "?"; case .excluded: return " "; case .missingInput: return "✗" }
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Say why a stage ran (or would run): which parameter, input or version differs.",
        discussion: "Without --spec: the reasons recorded when the stage last ran. With --spec: also what the current spec would do.")

    @Argument(help: ArgumentHelp("The stage (or PIPELINE/STAGE).", valueName: "stage")) var stage: String
    @Option(help: ArgumentHelp("A spec to compare the stored result with.", valueName: "spec")) var spec: String?
    @Option(name: .customLong("set"), parsing: .singleValue, help: ArgumentHelp("Overrides for --spec.", valueName: "stage.param=value")) var overrides: [String] = []
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            let store = try storeOptions.open()
            var pipelineName: String?
            var stageName = stage
            var plan: PlanEntry?
            if let spec {
                let s = try PipelineSpec.load(path: spec, registry: HAPSStages.registry, overrides: overrides, stored: store.results)
                guard s.stages[stage] != nil else {
                    throw UsageError("unknown stage '\(stage)' in \(spec)" + NearestName.hint(stage, among: s.order))
                }
                pipelineName = s.name
                plan = try Planner.plan(s, selection: s.ancestors(of: stage), forced: [], lookups: .store(store, pipeline: s.name))
                    .first { $0.stage == stage }
            }
            let found = try RefLookup.find(stage, pipeline: pipelineName, in: store)
            if let found {
                stageName = found.stage
                let r = found.ref
                let when = r.ranAt.map { Format.iso8601($0) } ?? "?"
                print("\(found.pipeline)/\(found.stage): last result \(r.output.short) (key \(r.key.short)), computed \(when) in \(Format.fixed(r.seconds, 2))s")
                print("it ran because:")
                for reason in r.reason { print("  - \(reason)") }
            } else if plan == nil {
                throw NotFoundError("no stored result for stage '\(stage)' in \(store.root); run the pipeline first, or pass --spec")
            } else {
                print("\(stageName): no stored result yet")
            }
            if let plan {
                switch plan.action {
                case .cached: print("now: up to date (key \(plan.key!.short) is cached)")
                case .excluded: break
                case .run, .dependsOnRun, .missingInput:
                    print("now: \(Plan.label(plan.action)) because:")
                    for reason in plan.reasons { print("  - \(reason)") }
                }
            }
        } catch { throw ErrorOutput.fail(error) }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the state of a pipeline's stages, or of the store and its recent runs.")

    @Argument(help: ArgumentHelp("A pipeline spec; without it, list the store's pipelines and runs.", valueName: "spec")) var spec: String?
    @Option(name: .customLong("set"), parsing: .singleValue, help: ArgumentHelp("Overrides for the spec.", valueName: "stage.param=value")) var overrides: [String] = []
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            let store = try storeOptions.open()
            if let spec {
                let s = try PipelineSpec.load(path: spec, registry: HAPSStages.registry, overrides: overrides, stored: store.results)
                let plan = try Planner.plan(s, selection: Set(s.order), forced: [], lookups: .store(store, pipeline: s.name))
                print("\(s.name) (\(spec)), store \(store.root)")
                let jobs = Dictionary(SlurmJobInFlight.all(in: store).map { ($0.key, $0) }) { a, _ in a }
                let failures = store.lastFailures(pipeline: s.name)
                let width = max(16, plan.map(\.stage.count).max() ?? 0)  // one column for every stage's name
                for e in plan {
                    let ref = store.ref(pipeline: s.name, stage: e.stage)
                    let state: String
                    switch e.action {
                    case .cached: state = "up to date"
                    case .run where e.key.flatMap({ jobs[$0] }) != nil: state = jobs[e.key!]!.label
                    case .run where e.key.flatMap({ failures[$0] }) != nil:
                        let f = failures[e.key!]!
                        print("  \(pad(e.stage, width)) \(pad("failed", 18)) in run \(f.run): \(f.error)")
                        continue
                    case .run: state = ref == nil ? "never run" : "out of date"
                    case .dependsOnRun: state = "waits on upstream"
                    case .excluded: state = "-"
                    case .missingInput: state = "missing input"
                    }
                    let out = e.action == .cached ? (store.action(e.key!)?.output.short ?? "") : (ref.map { "(last \($0.output.short))" } ?? "")
                    print("  \(pad(e.stage, width)) \(pad(state, 18)) \(out)")
                }
                return
            }
            let refs = store.allRefs()
            print("store \(store.root): \(Set(refs.map(\.pipeline)).count) pipelines, \(refs.count) stage results")
            for p in Set(refs.map(\.pipeline)).sorted() {
                print("  \(p): \(refs.filter { $0.pipeline == p }.map(\.stage).joined(separator: ", "))")
            }
            let jobs = SlurmJobInFlight.all(in: store)
            if !jobs.isEmpty { print("Slurm jobs in flight:") }
            for j in jobs { print("  \(j.pipeline)/\(j.stage): \(j.label)") }
            let runs = store.runRecordIDs().prefix(5)
            if !runs.isEmpty { print("recent runs:") }
            for id in runs {
                guard let r = store.runRecord(id: id) else { continue }
                let stages = r["stages"]?.arrayValue ?? []
                let counts = Dictionary(grouping: stages, by: { $0["outcome"]?.stringValue ?? "?" }).mapValues(\.count)
                let summary = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                print("  \(id)  \(summary)\(r["interrupted"]?.boolValue == true ? "  (interrupted)" : "")")
            }
        } catch { throw ErrorOutput.fail(error) }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show an artifact: a stage's latest output, or any artifact by digest (prefix).")

    @Argument(help: ArgumentHelp("STAGE, PIPELINE/STAGE, an artifact digest (at least 6 hex digits), or a sweep's name (its table).", valueName: "target")) var target: String
    @Option(help: ArgumentHelp("Only look in this pipeline's results.", valueName: "name")) var pipeline: String?
    @Flag(help: "Print JSON (manifest and provenance) instead of text.") var json = false
    @Option(help: "Lines of each text file to preview.") var lines = 10
    @Option(help: ArgumentHelp("For a samples artifact: print the dialogue of this question (qid).", valueName: "qid")) var question: Int?
    @Option(help: ArgumentHelp("With --question: only this action (role assignment) index.", valueName: "index")) var action: Int?
    @Option(help: ArgumentHelp("Write this one file of the artifact to standard output, whole and as stored (e.g. summary.json).", valueName: "name")) var file: String?
    @Flag(help: "Print the directory holding the artifact's files (read-only; `haps-pipe export` makes a copy).") var path = false
    @Option(help: ArgumentHelp("Show this experiment's result of the stage (`haps-pipe exp show` lists them), not the spec's own.", valueName: "name"))
    var exp: String?
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        do {
            let store = try storeOptions.open()
            var ref: (pipeline: String, stage: String, ref: StageRef)?
            var found = try RefLookup.find(target, pipeline: pipeline, in: store, specsOwn: true)
            if found == nil, pipeline == nil, !path, exp == nil, let sweep = try SweepState.load(store, target) {  // a sweep: its table
                print(try SweepCommand.report(try sweep.sweep(in: store, registry: HAPSStages.registry), store: store, failed: Set(sweep.failed)), terminator: "")
                return
            }
            if let exp {
                guard let f = found else { throw UsageError("--exp picks an experiment's result of a stage; '\(target)' is not a stage with a stored result") }
                let e = try ExpCommand.find(exp, in: store, pipeline: f.pipeline)
                guard let r = store.ref(pipeline: f.pipeline, stage: f.stage, experiment: e.name) else {
                    throw NotFoundError("experiment '\(e.name)' of \(f.pipeline) has no result of stage '\(f.stage)' (its latest run did not reach it)")
                }
                found = (f.pipeline, f.stage, r)
            } else if let f = found, !path, file == nil {
                Show.noteOtherExperiments(f, store: store)
            }
            ref = found
            let digest = try found.map { $0.ref.output } ?? RefLookup.artifact(target, pipeline: pipeline, in: store)
            if path {
                print(try store.materialize(digest))
                return
            }
            let m = try store.manifest(digest)
            if let file {
                guard let entry = m.files[file] else {
                    throw NotFoundError("\(digest.short) has no file '\(file)'" + NearestName.hintOrChoices(file, among: m.files.keys.sorted()))
                }
                try FileIO.writeAll(1, try store.object(entry.digest), path: "standard output")
                return
            }
            if let question {
                guard let t = m.files["transcripts.jsonl"] else {
                    throw UsageError("--question needs a samples artifact with transcripts; \(digest.short) is a '\(m.kind)' artifact")
                }
                let rows = try m.files["baseline.jsonl"].map { try store.object($0.digest) } ?? []
                try printTranscripts(try store.object(t.digest), baseline: rows, question: question, action: action)
                return
            }
            if json {
                var o: [String: JSONValue] = ["digest": .string(digest.hex), "manifest": m.json]
                if let ref {
                    o["pipeline"] = .string(ref.pipeline); o["stage"] = .string(ref.stage)
                    o["key"] = .string(ref.ref.key.hex); o["payload"] = ref.ref.payload
                    o["reason"] = .array(ref.ref.reason.map(JSONValue.string))
                }
                print(JSONValue.object(o).pretty)
                return
            }
            if let ref { print("\(ref.pipeline)/\(ref.stage)") }
            print("artifact \(digest.hex)")
            print("kind     \(m.kind)")
            if let ref {
                print("key      \(ref.ref.key.hex)")
                let log = store.logPath(ref.ref.key)
                if FileIO.exists(log) { print("log      \(log)  (its program's output)") }
            }
            print("files    \(m.files.count), \(m.totalSize) bytes")
            for name in m.files.keys.sorted() {
                let e = m.files[name]!
                print("  \(name)  \(e.size) bytes  \(e.digest.short)")
            }
            // A summary (summary.txt: the report a stage writes for people) is printed whole and
            // first; other text files are previewed.
            for name in m.files.keys.sorted(by: { ($0 == "summary.txt" ? 0 : 1, $0) < ($1 == "summary.txt" ? 0 : 1, $1) }) {
                let bytes = try store.object(m.files[name]!.digest)
                guard let text = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else { continue }
                let all = FileIO.lines(text)
                let shown = name == "summary.txt" ? all.count : lines
                print("--- \(name)\(all.count > shown ? " (first \(shown) of \(all.count) lines)" : "")")
                for l in all.prefix(shown) { print(l.count > 200 ? l.prefix(200) + "…" : l) }
            }
        } catch { throw ErrorOutput.fail(error) }
    }
}

extension Show {
    /// Names, on standard error, the experiments whose latest run holds a different result of
    /// the stage than the one shown (the spec's own), and how to show one of them.
    static func noteOtherExperiments(_ f: (pipeline: String, stage: String, ref: StageRef), store: Store) {
        let others = ((try? store.experiments(pipeline: f.pipeline)) ?? []).filter { e in
            e.results.contains { $0.stage == f.stage && $0.output != f.ref.output }
        }.map(\.name)
        guard let first = others.first else { return }
        FileIO.writeStderr("note: \(f.pipeline)/\(f.stage) is the spec's own result; experiment\(others.count == 1 ? "" : "s") \(others.joined(separator: ", ")) hold\(others.count == 1 ? "s" : "") another (haps-pipe show \(f.pipeline)/\(f.stage) --exp '\(first)')\n")
    }

    /// The dialogues of one question from a samples artifact's `transcripts.jsonl`, turn by turn.
    /// Each dialogue opens with who played which role, the question, the final answer, the
    /// gold answer and the F1 (from the artifact's baseline rows).
    func printTranscripts(_ bytes: [UInt8], baseline: [UInt8], question: Int, action: Int?) throws {
        var rows: [Int: JSONValue] = [:]  // action → its baseline row for this question
        for line in String(decoding: baseline, as: UTF8.self).split(separator: "\n") {
            guard let r = try? JSONParser.parse(String(line)), r["qid"]?.intValue == question, let a = r["action_index"]?.intValue else { continue }
            rows[a] = r
        }
        var found = 0
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let v = try JSONParser.parse(String(line))
            guard v["qid"]?.intValue == question, action == nil || v["action_index"]?.intValue == action else { continue }
            found += 1
            let a = v["action_index"]?.intValue ?? -1
            if let r = rows[a] {
                func quoted(_ k: String) -> String { r[k].map { $0.stringValue.map { JSONValue.string($0).canonical } ?? $0.canonical } ?? "?" }
                print("═══ question \(question), action \(a): teacher \(r["teacher"]?.stringValue ?? "?"), student \(r["student"]?.stringValue ?? "?") ═══")
                if let q = r["question"]?.stringValue { print("Q: " + q) }
                print("final answer \(quoted("answer")) · gold \(quoted("ground_truth")) · F1 \(r["f1"]?.doubleValue.map { Format.fixed($0, 3) } ?? "?")\n")
            } else {
                print("═══ question \(question), action \(a) ═══")
            }
            for turn in v["turns"]?.arrayValue ?? [] {
                print("── step \(turn["step"]?.intValue ?? 0) · \(turn["role"]?.stringValue ?? "?") · \(turn["call"]?.stringValue ?? "?") ──")
                print("PROMPT:\n" + (turn["prompt"]?.stringValue ?? ""))
                print("REPLY:\n" + (turn["reply"]?.stringValue ?? "") + "\n")
            }
        }
        if found == 0 {
            throw NotFoundError("no dialogue for question \(question)\(action.map { ", action \($0)" } ?? "") in this artifact")
        }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete what no pipeline's latest results need: unreferenced objects, cache entries, unpacked trees.",
        discussion: "Keeps every stage's latest result (the refs) and what the latest run of every experiment ended with (`haps-pipe exp show`; `exp drop` lets one go). --dry-run names the results it would remove. Waits for running haps-pipe processes on the store to finish.")

    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Only report what would be deleted.") var dryRun = false
    @Flag(help: "Also delete work areas of interrupted stages (their journals and checkpoints: resumable work is lost).") var cleanWork = false

    func run() throws {
        do {
            let store = try storeOptions.open()
            let r = try store.collectGarbage(dryRun: dryRun, keepWork: !cleanWork, extraRoots: store.experimentResults())
            let verb = dryRun ? "would remove" : "removed"
            if dryRun {
                // Name the stage results that would go, from the run records that made them.
                let names = store.resultNames()
                if !r.removedResults.isEmpty { print("results that would go:") }
                for d in r.removedResults { print("  \(d.output.short)  \(d.type)" + (names[d.output].map { ", last made as \($0)" } ?? "")) }
            }
            print("\(verb) \(r.removedObjects) objects (\(r.removedBytes) bytes), \(r.removedActions) cache entries, \(r.removedTrees) unpacked trees, \(r.removedTemporaries) temporary files\(cleanWork ? ", \(r.removedWorkAreas) work areas" : ""); kept \(r.keptObjects) objects")
        } catch { throw ErrorOutput.fail(error) }
    }
}

/// `s` padded with spaces to at least `width` characters.
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
