import ArgumentParser
import Pipeline
import Stages

/// A direct command's stage parameters as flags, read from the stage type's own declarations
/// (the one source of names, types, defaults and meanings, as `haps-pipe types` prints them):
/// each parameter is `--kebab-name`, a boolean also `--no-kebab-name`; `aliases` add the
/// reference scripts' spellings where a name differs (`--bsz` for `batch_size`). The command
/// declares with ArgumentParser only what is its own (inputs, `--model`, `--output-dir`, the
/// store) and collects the rest unparsed; `parse` turns that into the stage's `params`.
struct StageFlags {
    let stageType: String
    /// The declarations given as flags (those the command sets itself left out).
    let declarations: [ParameterDeclaration]
    /// Parameters the command sets from its own flags, with the flag that sets each.
    let setByCommand: [(parameter: String, flag: String)]
    /// Flag spelling (no dashes) → parameter name.
    let aliases: [String: String]
    /// Flags of the reference's scripts that mean nothing here: accepted, with a note why.
    let ignored: [String: String]

    init(stageType: String, setByCommand: [(parameter: String, flag: String)] = [], aliases: [String: String] = [:],
         ignored: [String: String] = [:]) {
        guard let definition = HAPSStages.registry[stageType] else { preconditionFailure("no stage type \(stageType)") }
        self.stageType = stageType
        let own = Set(setByCommand.map(\.parameter))
        declarations = definition.parameters.filter { !own.contains($0.name) }
        self.setByCommand = setByCommand; self.aliases = aliases; self.ignored = ignored
    }

    static func flag(_ parameter: String) -> String { parameter.replacing("_", with: "-") }

    /// The help section: one line a parameter, its default first (so that wrapping never
    /// separates a flag from it), then the declaration's meaning.
    var help: String {
        var lines = ["Stage parameters (the '\(stageType)' stage's, as `haps-pipe types \(stageType)` lists them):"]
        for d in declarations {
            let value = d.required ? "required" : d.defaultValue.map { $0 == .null ? "optional" : "default \($0.canonical)" } ?? "optional"
            let type = d.choices.map { $0.joined(separator: "|") } ?? d.type
            let alias = aliases.filter { $0.value == d.name }.keys.sorted().map { "--\($0)" }
            lines.append("  --\(StageFlags.flag(d.name)) (\(value); \(type)\(alias.isEmpty ? "" : "; also " + alias.joined(separator: ", "))): \(d.help)")
        }
        if !setByCommand.isEmpty {
            lines.append("  set by this command's own options: " + setByCommand.map { "\($0.parameter) (\($0.flag))" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    /// `parse`'s parameters, its notes written to standard error (what a command runs).
    func given(_ arguments: [String], positionals: Int = 0) throws -> (params: [(String, JSONValue)], positionals: [String]) {
        let r = try parse(arguments, positionals: positionals)
        for n in r.notes { FileIO.writeStderr(n + "\n") }
        return (r.params, r.positionals)
    }

    /// The given flags as `params` members (in the order given; a repeated array flag adds an
    /// element, a repeated scalar's last value wins), and notes for accepted reference flags
    /// that have no effect here. Unknown flags and values of the wrong type are usage errors
    /// that name the flag.
    func parse(_ arguments: [String]) throws -> (params: [(String, JSONValue)], notes: [String]) {
        let r = try parse(arguments, positionals: 0)
        return (r.params, r.notes)
    }

    /// As `parse`, with up to `positionals` arguments that are not flags (a command's operands,
    /// wherever they stand among the flags), returned in order.
    func parse(_ arguments: [String], positionals: Int) throws -> (params: [(String, JSONValue)], notes: [String], positionals: [String]) {
        var values: [(String, JSONValue)] = [], notes: [String] = [], operands: [String] = []
        let byFlag = Dictionary(uniqueKeysWithValues: declarations.map { (StageFlags.flag($0.name), $0) })
        var i = 0
        func set(_ name: String, _ v: JSONValue, append: Bool) {
            if let at = values.firstIndex(where: { $0.0 == name }) {
                if append, case .array(let a) = values[at].1, case .array(let b) = v { values[at].1 = .array(a + b) } else { values[at].1 = v }
            } else { values.append((name, v)) }
        }
        while i < arguments.count {
            let argument = arguments[i]
            guard argument.hasPrefix("--") else {
                guard operands.count < positionals else { throw UsageError("unexpected argument '\(argument)'") }
                operands.append(argument); i += 1
                continue
            }
            var name = String(argument.dropFirst(2)), inline: String? = nil
            if let eq = name.firstIndex(of: "=") { inline = String(name[name.index(after: eq)...]); name = String(name[..<eq]) }
            name = name.replacing("_", with: "-")  // the reference's snake_case spellings too
            i += 1
            func value() throws -> String {
                if let inline { return inline }
                guard i < arguments.count else { throw UsageError("--\(name) needs a value") }
                defer { i += 1 }
                return arguments[i]
            }
            if let why = ignored[name] {
                if inline == nil, i < arguments.count, !arguments[i].hasPrefix("--") { i += 1 }
                notes.append("note: --\(name) has no effect: \(why)")
                continue
            }
            let negated = name.hasPrefix("no-") && byFlag[String(name.dropFirst(3))]?.type == Bool.parameterType
            guard let d = byFlag[aliases[name].map(StageFlags.flag) ?? name] ?? (negated ? byFlag[String(name.dropFirst(3))] : nil) else {
                throw UsageError("unknown option '--\(name)' for \(stageType)" + NearestName.hint(name, among: Array(byFlag.keys) + aliases.keys.sorted()))
            }
            switch d.type {
            case Bool.parameterType:
                if negated { set(d.name, .bool(false), append: false); continue }
                var text = inline
                if text == nil, i < arguments.count, ["true", "false"].contains(arguments[i]) { text = arguments[i]; i += 1 }
                guard let b = ["true": true, "false": false][text ?? "true"] else {
                    throw UsageError("--\(name): expected true or false, found '\(text ?? "")'")
                }
                set(d.name, .bool(b), append: false)
            case Int.parameterType, Double.parameterType:
                let t = try value()
                guard let x = Double(t), x.isFinite else { throw UsageError("--\(name): expected \(d.type), found '\(t)'") }
                set(d.name, .number(x), append: false)
            case "an array":
                let t = try value()
                if t.first == "[", let parsed = try? JSONParser.parse(t) { set(d.name, parsed, append: false) } else {
                    set(d.name, .array(t.split(separator: ",").map { .string(String($0)) }), append: true)
                }
            case "an object", JSONValue.parameterType:
                let t = try value()
                guard let parsed = try? JSONParser.parse(t) else {
                    if d.type == JSONValue.parameterType { set(d.name, .string(t), append: false); continue }
                    throw UsageError("--\(name): expected a JSON object, found '\(t)'")
                }
                set(d.name, parsed, append: false)
            default:  // strings and enums
                let t = try value()
                if let choices = d.choices, !choices.contains(t) {
                    throw UsageError("unknown --\(name) '\(t)'" + NearestName.hintOrChoices(t, among: choices))
                }
                set(d.name, .string(t), append: false)
            }
        }
        return (values, notes, operands)
    }
}

extension PipelineSpec {
    /// A direct command's pipeline (named `name`, else the command's), built as a value and
    /// validated as a spec file is, its problems attributed to `haps-pipe COMMAND`; `seed`: nil
    /// leaves the spec's default.
    static func direct(_ command: String, name: String? = nil, seed: Int?, resources: JSONValue? = nil, stages: [(String, JSONValue)]) throws -> PipelineSpec {
        var doc: [(String, JSONValue)] = [("name", .string(name ?? command))]
        if let seed { doc.append(("seed", .number(Double(seed)))) }
        if let resources { doc.append(("resources", resources)) }
        doc.append(("stages", .object(stages)))
        return try PipelineSpec.parse(value: .object(doc), file: "haps-pipe \(command)", registry: HAPSStages.registry)
    }
}
