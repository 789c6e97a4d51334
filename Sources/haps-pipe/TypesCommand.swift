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
            Examples:
              haps-pipe types
              haps-pipe types train-agent
            """)

    @Argument(help: ArgumentHelp("A stage type; without it, every type with its summary.", valueName: "type"))
    var type: String?

    func run() throws {
        do {
            let registry = HAPSStages.registry
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

    /// "NAME (version V): summary", then one line per parameter.
    static func describe(_ d: StageDefinition) -> String {
        var out = "\(d.name) (version \(d.version))" + (d.summary.isEmpty ? "" : ": \(d.summary)") + "\n"
        out += d.parameters.isEmpty ? "no parameters\n" : "parameters:\n" + d.parameters.map { "  \($0.summary)\n" }.joined()
        return out
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
}
