import ArgumentParser
import Pipeline
import Stages

/// `haps-pipe dag SPEC`: the pipeline's graph as text, DOT (Graphviz) or Mermaid.
struct Dag: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dag",
        abstract: "Print a pipeline's graph: as text, as DOT for Graphviz, or as Mermaid for READMEs.",
        discussion: """
            Stages in the order they can run, each with its type and where each input comes \
            from (another stage, or a file). Nothing is read from the store.

            Examples:
              haps-pipe dag pipelines/quickstart.json
              haps-pipe dag pipelines/quickstart.json --format dot | dot -Tsvg > dag.svg
              haps-pipe dag pipelines/llama_qwen.json --format mermaid
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, dot, mermaid }

    @OptionGroup var specOptions: SpecOptions
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "text, dot or mermaid.") var format: Format = .text

    func run() throws {
        let spec: PipelineSpec
        do {
            // Inputs may name results in the store (PIPELINE/STAGE); without a store, such names read as paths.
            spec = FileIO.isDirectory(storeOptions.store) ? try specOptions.load(store: try storeOptions.open()) : try specOptions.load()
        } catch { throw ErrorOutput.fail(error) }
        print(Dag.render(spec, format), terminator: "")
    }

    static func render(_ spec: PipelineSpec, _ format: Format) -> String {
        // Every edge: (from, port, to); a file input's node is its path.
        var edges: [(from: String, port: String, to: String, file: Bool)] = []
        for name in spec.order {
            for input in spec.stages[name]!.inputs {
                switch input.source {
                case .stage(let s): edges.append((s, input.port, name, false))
                case .path(let p): edges.append((Dag.relative(p, to: spec.baseDirectory), input.port, name, true))
                case .artifact(let d): edges.append(("artifact " + d.short, input.port, name, true))
                }
            }
        }
        let files = Array(Set(edges.filter(\.file).map(\.from))).sorted()
        switch format {
        case .text:
            var out = "\(spec.name): \(spec.order.count) stages\n"
            for name in spec.order {
                let st = spec.stages[name]!
                let inputs = edges.filter { $0.to == name }.map { "\($0.port) ← \($0.file && !$0.from.hasPrefix("artifact ") ? "file " : "")\($0.from)" }
                out += "  \(name) (\(st.definition.name))" + (inputs.isEmpty ? "" : ": " + inputs.joined(separator: ", ")) + "\n"
            }
            return out
        case .dot:
            var out = "digraph \"\(spec.name)\" {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n"
            for name in spec.order { out += "  \"\(name)\" [label=\"\(name)\\n\(spec.stages[name]!.definition.name)\"];\n" }
            for f in files { out += "  \"\(f)\" [shape=note, style=\"\"];\n" }
            for e in edges { out += "  \"\(e.from)\" -> \"\(e.to)\" [label=\"\(e.port)\"];\n" }
            return out + "}\n"
        case .mermaid:
            // Mermaid ids: s_NAME for stages (never a Mermaid keyword such as `end`), f0, f1, ... for files
            func id(_ node: String) -> String { files.firstIndex(of: node).map { "f\($0)" } ?? "s_" + String(node.map { $0 == "-" ? "_" : $0 }) }
            var out = "flowchart LR\n"
            for name in spec.order { out += "  \(id(name))[\"\(name)<br/><small>\(spec.stages[name]!.definition.name)</small>\"]\n" }
            for f in files { out += "  \(id(f))[/\"\(f)\"/]\n" }
            for e in edges { out += "  \(id(e.from)) -->|\(e.port)| \(id(e.to))\n" }
            return out
        }
    }

    /// `path` relative to `base` when it lies under it.
    static func relative(_ path: String, to base: String) -> String {
        path.hasPrefix(base + "/") ? String(path.dropFirst(base.count + 1)) : path
    }
}
