import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe types [TYPE]`: the stage types and their parameters, printed from the parameter
/// declarations themselves (the one source of names, types, defaults and meanings).
struct Types: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "types",
        abstract: "List the stage types, or one type's parameters (type, default, meaning).",
        discussion: """
            Each type's inputs (their kinds, which are optional), the kind of its output and its \
            parameters (type, default, meaning), from the code's own declarations. \
            docs/stages.md is `haps-pipe types --markdown`, and a test keeps the two equal.

            Examples:
              haps-pipe types
              haps-pipe types train-agent
              haps-pipe types --markdown > docs/stages.md
            """)

    @Argument(help: ArgumentHelp("A stage type; without it, every type with its summary.", valueName: "type"))
    var type: String?

    @Flag(help: "Every type in full as Markdown (docs/stages.md).") var markdown = false

    func run() throws {
        do {
            let registry = HAPSStages.registry
            if markdown {
                print(Types.markdown(registry), terminator: "")
                return
            }
            guard let name = type else {
                for n in registry.names { print(Types.pad(n, 14) + registry[n]!.summary) }
                return
            }
            guard let definition = registry[name] else {
                throw UsageError("unknown stage type '\(name)'" + NearestName.hintOrChoices(name, among: registry.names))
            }
            print(Types.describe(definition), terminator: "")
        } catch { throw ErrorOutput.fail(error) }
    }

    /// "NAME (version V): summary", its inputs and output, then one line per parameter.
    static func describe(_ d: StageDefinition) -> String {
        var out = "\(d.name) (version \(d.version))" + (d.summary.isEmpty ? "" : ": \(d.summary)") + "\n"
        if let ports = d.documentedPorts {
            out += ports.inputs.isEmpty && ports.openInputKind == nil ? "no inputs\n" : "inputs:\n"
            for i in ports.inputs {
                out += "  \(i.name) (\(i.kind)\(i.optional ? ", optional" : ""))" + (i.help.isEmpty ? "" : ": \(i.help)") + "\n"
            }
            if let open = ports.openInputKind { out += "  any other name (\(open), optional)\n" }
            out += "output: \(ports.output)\n"
        }
        out += d.parameters.isEmpty ? "no parameters\n" : "parameters:\n" + d.parameters.map { "  \($0.summary)\n" }.joined()
        return out
    }

    /// Every stage type as Markdown: docs/stages.md.
    static func markdown(_ registry: StageRegistry) -> String {
        func cell(_ s: String) -> String { s.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|") }
        var out = """
            # Stage types

            Every stage type with its inputs, output and parameters, as `haps-pipe types TYPE` prints
            them. Generated from the code's own declarations by `haps-pipe types --markdown >
            docs/stages.md`; `CLITests.testDocsStagesIsTheTypesReference` keeps this file equal to it.
            A port named `model_<name>` stands for one port per candidate the stage's parameters name.


            """
        out += registry.names.map { "- [`\($0)`](#\($0))" }.joined(separator: "\n") + "\n"
        for name in registry.names {
            let d = registry[name]!
            out += "\n## \(name)\n\n" + (d.summary.isEmpty ? "" : d.summary + "\n\n") + "Version \(d.version)."
            if let ports = d.documentedPorts {
                out += " Output: `\(ports.output)`.\n\n"
                if ports.inputs.isEmpty && ports.openInputKind == nil { out += "No inputs.\n" } else {
                    out += "| input | kind | required | meaning |\n| --- | --- | --- | --- |\n"
                    for i in ports.inputs { out += "| `\(i.name)` | `\(i.kind)` | \(i.optional ? "no" : "yes") | \(cell(i.help)) |\n" }
                    if let open = ports.openInputKind { out += "| any other name | `\(open)` | no | inputs named freely (see the parameters) |\n" }
                }
            } else { out += "\n" }
            if d.parameters.isEmpty { out += "\nNo parameters.\n"; continue }
            out += "\n| parameter | type | default | meaning |\n| --- | --- | --- | --- |\n"
            for p in d.parameters {
                let type = p.choices.map { "one of " + $0.map { "`\($0)`" }.joined(separator: ", ") } ?? p.type
                let value = p.required ? "required" : p.defaultValue.map { $0 == .null ? "optional" : "`\(cell($0.canonical))`" } ?? "optional"
                out += "| `\(p.name)` | \(type) | \(value) | \(cell(p.help)) |\n"
            }
        }
        return out
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
}
