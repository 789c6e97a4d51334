#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The generic `command` stage: runs an external program as a cached pipeline stage.
///
///     "train": {"type": "command",
///               "inputs": {"data": "build_sft", "script": "scripts/train.py"},
///               "params": {"run": "python3 {inputs.script} --data {inputs.data} --lr {params.lr} --out {outputs.model}",
///                          "outputs": ["model"], "params": {"lr": 0.0001}}}
///
/// Placeholders in `run` and `env` values: `{inputs.PORT}` (path of an input: the file when
/// the artifact is one file, else its directory), `{outputs.NAME}` (a path in the output
/// directory), `{out}` (the output directory), `{work}` (scratch kept across interruptions,
/// for the program's own checkpoints), `{params.NAME}`, `{seed}`; `{{` and `}}` are braces.
/// The same values are in the environment: `HAPS_OUT`, `HAPS_WORK`, `HAPS_SEED`,
/// `HAPS_INPUT_<PORT>`, `HAPS_PARAM_<NAME>` (upper-cased). Everything the program writes
/// under `{out}` becomes the stage's artifact; each name in `outputs` must exist afterwards.
public struct CommandStage: StageType {
    public struct Params: StageParameters {
        @Param("shell command string, or an array of arguments (no shell)") public var run: Command
        @Param("names the program must write under {out}; each is {outputs.NAME}") public var outputs: [String] = []
        @Param("artifact kind of the output") public var kind = ArtifactKind.files.name
        @Param("the program's own parameters: {params.NAME} and HAPS_PARAM_NAME") public var params: [String: JSONValue] = [:]
        @Param("extra environment variables (placeholders allowed)") public var env: [String: String] = [:]
        @Param("working directory, relative to where haps-pipe runs (default: that directory)") public var cwd: String? = nil
        @Param("item mode: run once per line of this input's JSONL file, journaled, resumable") public var foreach: String? = nil
        @Param("item mode: items run at once") public var workers = 1
        @Param("spec resources the program uses, e.g. [\"models.llama\"]: part of the key, in HAPS_RESOURCE_<NAME>") public var resources: [String] = []
        public init() {}
    }

    /// A shell command (run by `/bin/sh -c`) or an argument vector (run directly).
    public enum Command: ParameterValue {
        case shell(String)
        case argv([String])
        public static var parameterType: String { "a string or an array of strings" }
        public init(parameter json: JSONValue, at path: JSONPath) throws(SpecProblem) {
            if let s = json.stringValue { self = .shell(s); return }
            guard json.arrayValue != nil else { throw Self.mismatch(json, at: path) }
            self = .argv(try [String](parameter: json, at: path))
        }
        public var parameterJSON: JSONValue {
            switch self { case .shell(let s): return .string(s); case .argv(let a): return a.parameterJSON }
        }
        var isShell: Bool { if case .shell = self { return true }; return false }
        var templates: [String] {
            switch self { case .shell(let s): return [s]; case .argv(let a): return a }
        }
    }

    public static let name = "command"
    public static let version = 1
    public static let summary = "Runs an external program with declared inputs, parameters and outputs."

    public static func resources(_ p: Params) -> [String] { p.resources }

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [], output: ArtifactKind(p.kind), openInputKind: .any)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if p.run.templates.isEmpty || p.run.templates.allSatisfy({ $0.allSatisfy(\.isWhitespace) }) {
            problems.append(SpecProblem(path.appending("run"), "the command is empty"))
        }
        for o in p.outputs where o.isEmpty || o.hasPrefix("/") || o.split(separator: "/").contains("..") {
            problems.append(SpecProblem(path.appending("outputs"), "output '\(o)' must be a relative path inside the output directory"))
        }
        // Every placeholder must name something that exists.
        let templates = p.run.templates.map { (path.appending("run"), $0) } + p.env.map { (path.appending("env").appending($0.key), $0.value) }
        for (at, t) in templates {
            switch Template.placeholders(in: t) {
            case .failure(let f): problems.append(SpecProblem(at, f.message))
            case .success(let names):
                for n in names {
                    let parts = n.split(separator: ".", maxSplits: 1).map(String.init)
                    switch (parts.first ?? "", parts.count) {
                    case ("out", 1), ("work", 1), ("seed", 1), ("inputs", 2): break
                    case ("item_index", 1) where p.foreach != nil, ("item_file", 1) where p.foreach != nil: break
                    case ("outputs", 2):
                        if !p.outputs.contains(parts[1]) {
                            problems.append(SpecProblem(at, "placeholder {\(n)} names an undeclared output" + NearestName.hint(parts[1], among: p.outputs) + " (declare it in 'outputs')"))
                        }
                    case ("params", 2):
                        if p.params[parts[1]] == nil {
                            problems.append(SpecProblem(at, "placeholder {\(n)} names an undefined parameter" + NearestName.hint(parts[1], among: p.params.keys)))
                        }
                    default:
                        let known = ["{inputs.PORT}", "{outputs.NAME}", "{params.NAME}", "{out}", "{work}", "{seed}"]
                            + (p.foreach == nil ? [] : ["{item_index}", "{item_file}"])
                        problems.append(SpecProblem(at, "unknown placeholder {\(n)}; use \(known.dropLast().joined(separator: ", ")) or \(known.last!) (write {{ and }} for literal braces)"))
                    }
                }
            }
        }
        // A placeholder where the shell expands nothing (a quoted here-document), or after a
        // backslash, is refused now.
        if case .shell(let script) = p.run, case .success(let names) = Template.placeholders(in: script) {
            do { _ = try Template.shellCommand(script, Dictionary(names.map { ($0, "") }, uniquingKeysWith: { a, _ in a })) } catch {
                problems.append(SpecProblem(path.appending("run"), "\(error)"))
            }
        }
        if p.workers < 1 { problems.append(SpecProblem(path.appending("workers"), "expected a positive integer, found \(p.workers)")) }
        if p.foreach != nil && !p.outputs.isEmpty {
            problems.append(SpecProblem(path.appending("outputs"), "item mode ('foreach') writes results.jsonl itself; remove 'outputs'"))
        }
        return problems
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        var values: [String: String] = ["out": context.outputDirectory, "work": context.workDirectory, "seed": String(context.seed)]
        var env = ProcessInfo.processInfo.environment
        env["HAPS_OUT"] = context.outputDirectory
        env["HAPS_WORK"] = context.workDirectory
        env["HAPS_SEED"] = String(context.seed)
        env["HAPS_THREADS"] = String(context.threads)
        for (name, r) in context.resources { env["HAPS_RESOURCE_\(envName(name))"] = r.canonical }
        for (port, a) in context.inputs {
            values["inputs.\(port)"] = a.path
            env["HAPS_INPUT_\(envName(port))"] = a.path
        }
        for o in p.outputs {
            let full = context.outputDirectory + "/" + o
            values["outputs.\(o)"] = full
            try FileIO.makeDirectory(Path.directory(full))
        }
        for (k, v) in p.params {
            let s = v.stringValue ?? v.canonical
            values["params.\(k)"] = s
            env["HAPS_PARAM_\(envName(k))"] = s
        }
        for (k, v) in p.env { env[k] = try Template.render(v, values) }
        let cwd = p.cwd.map { $0.hasPrefix("/") ? $0 : context.baseDirectory + "/" + $0 } ?? context.baseDirectory
        guard FileIO.isDirectory(cwd) else {
            throw CommandFailure(message: "'cwd' is \(p.cwd ?? cwd), but \(cwd) is not an existing directory")
        }
        if let port = p.foreach {
            return try runItems(p, port: port, values: values, env: env, cwd: cwd, context)
        }
        let command = try invocation(p, values)
        let logPath = context.workDirectory + "/command.log"
        FileIO.remove(logPath)
        context.progress.setStatus(String((p.run.isShell ? command.display.dropFirst("/bin/sh -c ".count) : Substring(command.display)).prefix(60)))
        let result = try Subprocess.run(arguments: command.argv, environment: env.merging(command.environment) { $1 }, directory: cwd, logPath: logPath,
                                        groupRecord: StageContext.processRecord(context.workDirectory), cancellation: context.cancellation)
        try check(result, command: command.display, logPath: logPath, context)
        for o in p.outputs where !FileIO.exists(context.outputDirectory + "/" + o) {
            throw CommandFailure(message: "command finished but did not write its declared output '\(o)' (expected at {outputs.\(o)} = \(context.outputDirectory)/\(o))")
        }
    }

    /// What runs: the arguments, the variables a shell command's placeholders refer to
    /// (`ShellCommand`: values are data, never code), and the command as messages show it.
    static func invocation(_ p: Params, _ values: [String: String]) throws -> (argv: [String], environment: [String: String], display: String) {
        switch p.run {
        case .shell(let s):
            let c = try Template.shellCommand(s, values)
            return (["/bin/sh", "-c", c.script], c.environment, "/bin/sh -c " + c.display)
        case .argv(let a):
            let argv = try a.map { try Template.render($0, values) }
            return (argv, [:], argv.map(Template.shellQuoted).joined(separator: " "))
        }
    }

    static func check(_ result: Subprocess.Result, command: String, logPath: String, _ context: StageContext) throws {
        if context.cancellation.isCancelled { throw CancellationError() }
        guard result.exitCode != 0 else { return }
        let tail = FileIO.lastLines(of: logPath, count: 20) ?? []
        let how = result.signal.map { "was killed by signal \($0)" } ?? "exited with status \(result.exitCode)"
        // A full disk is the likely cause when the program failed and no space is left where it writes.
        let full = [context.outputDirectory, context.workDirectory].first { (FileIO.freeBytes($0) ?? .max) < 64 << 10 }
        let disk = full.map { "\nthe file system holding \($0) is full (ENOSPC, no space left on device): free space and rerun" } ?? ""
        throw CommandFailure(message: "command \(how): \(command)\(disk)\n--- last lines of its output (\(logPath)) ---\n" + tail.joined(separator: "\n"))
    }

    /// Item mode: one run per line of the `foreach` input; each finished item goes to the
    /// journal, so an interrupted stage resumes with the items it has not finished. The output
    /// is `results.jsonl`, one `{"index": i, "output": ...}` per item in input order, where
    /// output is the program's standard output (as JSON when it parses, else as a string).
    static func runItems(_ p: Params, port: String, values: [String: String], env: [String: String], cwd: String,
                         _ context: StageContext) throws {
        guard let input = context.inputs[port] else {
            throw CommandFailure(message: "'foreach' names input '\(port)', which this stage does not have; inputs: \(context.inputs.keys.sorted().joined(separator: ", "))")
        }
        let lines = FileIO.lines(try FileIO.readString(input.path)).map(String.init)
        let journal = try context.journal("items")
        context.progress.setTotal(lines.count)
        context.progress.resume(completed: lines.indices.filter { journal.contains(itemKey($0, lines[$0])) }.count)
        let itemsDir = context.workDirectory + "/items"
        try FileIO.makeDirectory(itemsDir)
        let pending = lines.indices.filter { !journal.contains(itemKey($0, lines[$0])) }
        let items = lines
        let failures = ItemWorkers.run(pending, workers: p.workers, cancellation: context.cancellation) { i in
            let itemFile = "\(itemsDir)/\(i).json", outFile = "\(itemsDir)/\(i).out", logFile = "\(itemsDir)/\(i).log"
            try FileIO.writeAtomically(items[i], to: itemFile, sync: false)
            var v = values; v["item_index"] = String(i); v["item_file"] = itemFile
            var e = env; e["HAPS_ITEM_INDEX"] = String(i); e["HAPS_ITEM_FILE"] = itemFile
            let command = try invocation(p, v)
            FileIO.remove(logFile)
            let r = try Subprocess.run(arguments: command.argv, environment: e.merging(command.environment) { $1 }, directory: cwd, logPath: logFile, stdoutPath: outFile,
                                       groupRecord: StageContext.processRecord(context.workDirectory), cancellation: context.cancellation)
            do { try check(r, command: command.display, logPath: logFile, context) } catch {
                context.log("item \(i) failed: \(String(describing: error).split(separator: "\n").first ?? "")")
                throw error
            }
            var out = String(decoding: try FileIO.read(outFile), as: UTF8.self)
            while out.hasSuffix("\n") { out.removeLast() }
            try journal.append(key: itemKey(i, items[i]), json: (try? JSONParser.parse(out)) ?? .string(out))
            context.progress.advance()
        }
        if context.cancellation.isCancelled { throw CancellationError() }
        if let first = failures.first {
            throw CommandFailure(message: "\(failures.count) of \(lines.count) items failed (\(lines.count - failures.count) are done and kept; a rerun retries only the failed ones). First failure, item \(first.item):\n\(first.error)")
        }
        var out = ""
        for (i, line) in lines.enumerated() {
            let v = journal.json(itemKey(i, line)) ?? .null
            out += JSONValue.object(["index": .number(Double(i)), "output": v]).canonical + "\n"
        }
        try FileIO.writeAtomically(out, to: context.outputDirectory + "/results.jsonl")
    }

    static func itemKey(_ index: Int, _ line: String) -> String { "\(index):\(Digest.of(string: line).short)" }

    static func envName(_ s: String) -> String {
        String(s.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}

/// A failed external command, with the tail of its output.
public struct CommandFailure: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

/// `{name}` placeholders with Python `str.format` brace rules (`{{` and `}}` are literal).
public enum Template {
    public static func placeholders(in s: String) -> Swift.Result<[String], CommandFailure> {
        var names: [String] = []
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == "{" {
                let n = s.index(after: i)
                if n < s.endIndex && s[n] == "{" { i = s.index(after: n); continue }
                guard let close = s[n...].firstIndex(of: "}") else { return .failure(CommandFailure(message: "unmatched '{' in \"\(s)\"")) }
                names.append(String(s[n..<close]))
                i = s.index(after: close)
            } else if c == "}" {
                let n = s.index(after: i)
                if n < s.endIndex && s[n] == "}" { i = s.index(after: n); continue }
                return .failure(CommandFailure(message: "single '}' in \"\(s)\" (write '}}' for a literal brace)"))
            } else { i = s.index(after: i) }
        }
        return .success(names)
    }

    /// `s` with each placeholder replaced by its value, as it is (an argument vector's word or
    /// an environment variable's value; a shell command uses `shellCommand`).
    public static func render(_ s: String, _ values: [String: String]) throws -> String {
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            let n = s.index(after: i)
            if (c == "{" || c == "}") && n < s.endIndex && s[n] == c { out.append(c); i = s.index(after: n); continue }
            if c == "{", let close = s[n...].firstIndex(of: "}") {
                let name = String(s[n..<close])
                guard let v = values[name] else { throw CommandFailure(message: "placeholder {\(name)} has no value") }
                out += v
                i = s.index(after: close)
                continue
            }
            out.append(c); i = n
        }
        return out
    }

    /// A value as one `/bin/sh` word, as Python's `shlex.quote` writes it: unchanged when it is
    /// made of letters, digits and `@%+=:,./_-` only, else in single quotes (a quote inside as
    /// `'"'"'`). For messages: commands never run a value written into their text.
    public static func shellQuoted(_ value: String) -> String {
        let safe = Set("@%+=:,./_-".utf8)
        func isSafe(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || safe.contains(b)
        }
        if !value.isEmpty && value.utf8.allSatisfy(isSafe) {
            return value
        }
        return "'" + value.map { $0 == "'" ? "'\"'\"'" : String($0) }.joined() + "'"
    }
}
