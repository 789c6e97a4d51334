#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
public import Pipeline

extension ServedSystem {
    /// Opens the result `target` names in `store` (a stage, `PIPELINE/STAGE` or a digest), or
    /// a directory `export` made of one: an `rl-train` result (router and generators) or an
    /// `sft-train` result (a router). The candidates are `options.models`, else the result's
    /// own model inputs (the pipeline's trained candidates), else its resources; the dialogue's
    /// settings and retriever are the result's, unless `options` says otherwise (a directory
    /// carries none: the flags' or the defaults).
    public static func open(store: Store?, target: String, options: Options) throws -> ServedSystem {
        let (label, directory, kind, payload) = try locate(target, store: store)
        let engine = options.engine ?? CPUEngine(threads: max(1, options.threads))
        let params = payload?["params"] ?? .object([])
        let resources = payload?["resources"] ?? .object([])
        let inputs = payload?["inputs"] ?? .object([])

        // The dialogue: the result's settings (rl-train's), the flags' where given.
        let recorded = kind == .joint && payload != nil
        let dialogueNames = Set(DialogueParams.declarations.map(\.name))  // rl-train's parameters of the dialogue
        var given = recorded ? (params.objectMembers ?? []).filter { dialogueNames.contains($0.key) } : []
        let flags: [(String, JSONValue?)] = [("prompts", options.prompts.map { .string($0.rawValue) }),
                                             ("budget", options.budget.map { .number(Double($0)) }), ("max_tokens", options.maxTokens.map { .number(Double($0)) })]
        for case let (name, value?) in flags { given = given.filter { $0.key != name } + [(name, value)] }
        let dialogue = try DialogueParams.from(.object(given))

        // The candidates: keys (the spec's resource names) and the names the rows use.
        let keys: [String], names: [String]
        if recorded {
            keys = dialogue.candidates
            names = keys.map { DialogueParams.candidateName(resources["models.\($0)"], $0) }
        } else {
            let router = try JSONParser.parse(try FileIO.readString(directory + "/router.json"))
            names = router["candidates"]?.arrayValue?.compactMap(\.stringValue) ?? []
            keys = names
        }
        for given in options.models.keys where !keys.contains(given) && !names.contains(given) {
            throw ServeError("--model \(given)=...: \(label) has no candidate '\(given)' (its candidates: \(names.joined(separator: ", ")))")
        }
        var models: [any ChatModel] = [], missing: [String] = []
        for (key, name) in zip(keys, names) {
            if let m = try candidate(key: key, name: name, options: options, inputs: inputs, resources: resources, store: store, engine: engine) {
                models.append(m)
            } else {
                missing.append(name)
            }
        }
        let locals = models.compactMap { $0 as? EngineChatModel }
        let allLocal = missing.isEmpty && locals.count == models.count

        // The router (with the generators when they can be applied).
        var system: HAPSSystem?
        let router: DecoderRouter
        if kind == .joint && allLocal {
            let s = try HAPSSystem.load(directory: directory, candidates: locals, engine: engine)
            system = s
            router = s.router
        } else {
            guard let r = try RouterArtifacts.load(directory: directory, engine: engine) as? DecoderRouter else {
                throw ServeError("\(label): its router is not a decoder router")
            }
            router = r
        }
        guard router.space.candidates == names.count else {
            throw ServeError("\(label): the router routes over \(router.space.count) actions of \(router.space.candidates) candidates, but \(names.count) are named")
        }

        // The retriever and the sampler (greedy, as evaluate's live rows).
        var why = missing.isEmpty ? nil : "no model for candidate\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", ")) (give --model NAME=DIR or NAME=URL)"
        var sampler: DialogueSampler?
        let retriever = try options.retriever.map { r in
            r == "lexical" ? LexicalRetriever() as any Retriever : DenseRetriever(encoder: try SentenceEncoder(directory: r))
        } ?? resources[dialogue.retriever].map { try Backends.retriever($0, name: dialogue.retriever) }
        if retriever == nil {
            why = why ?? "\(label) names no retriever (\(payload == nil ? "a directory" : "an sft-train result")): give --retriever lexical|DIR"
        }
        let prompts = try inputs["prompts"]?.stringValue.flatMap(Digest.init(hex:)).flatMap { d in try store.map { try PromptSet.load(directory: try $0.materialize(d)) } }
        let prices: [DialogueSampler.Price?] = keys.map { key in
            guard let pr = resources["models.\(key)"]?["price"], let a = pr["prompt"]?.doubleValue, let b = pr["completion"]?.doubleValue else { return nil }
            return DialogueSampler.Price(prompt: a, completion: b)
        }
        if let retriever {
            sampler = DialogueSampler(dialogue: dialogue.dialogue(settings: .reference, prompts: prompts), retriever: retriever, names: names, prices: prices)
        }

        let known = try knownQuestions(inputs: inputs, options: options, store: store)
        return ServedSystem(label: label, kind: kind, names: names, router: router, system: system,
                            plain: why == nil ? models : nil, missing: why, sampler: sampler, known: known)
    }

    /// The questions a system knows by their text: the result's own question inputs, then the
    /// flags' (the first of a text wins).
    static func knownQuestions(inputs: JSONValue, options: Options, store: Store?) throws -> [String: HotpotQuestion] {
        var known: [String: HotpotQuestion] = [:]
        var sources: [String] = []
        for port in ["train", "valid", "test"] {
            if let store, let hex = inputs[port]?.stringValue, let d = Digest(hex: hex) { sources.append(try store.materialize(d) + "/questions.jsonl") }
        }
        for q in options.questions { sources.append(try questionsFile(q, in: store)) }
        for file in sources {
            for q in try HotpotQA.load(file, requireAnswers: false) where known[q.question.trimmingSpaces] == nil { known[q.question.trimmingSpaces] = q }
        }
        return known
    }

    /// Where the system's files are, what it is, and what its run recorded (nil for a directory).
    static func locate(_ target: String, store: Store?) throws -> (label: String, directory: String, kind: Kind, payload: JSONValue?) {
        if FileIO.isDirectory(target) && FileIO.exists(target + "/router.json") {
            if HAPSSystem.isTrainedSystem(directory: target) { return (target, target, .joint, nil) }
            guard FileIO.exists(target + "/model.safetensors") else {
                throw ServeError("\(target) is a table router: serve --system takes an rl-train result (a HAPS system) or an sft-train result (a decoder router)")
            }
            return (target, target, .router, nil)
        }
        guard let store else {
            throw ServeError("'\(target)' is not a system directory (router.json, from `haps-pipe export` of an rl-train or sft-train result), and there is no store to look it up in (--store)")
        }
        let (label, digest, payload) = try resolve(target, in: store)
        let manifest = try store.manifest(digest)
        let kind: Kind
        switch manifest.kind {
        case .joint: kind = .joint
        case .router where manifest.files["model.safetensors"] != nil: kind = .router
        default:
            throw ServeError("\(label) is a '\(manifest.kind)' artifact\(payload?["type"]?.stringValue.map { " (from \($0))" } ?? ""): serve --system takes an rl-train result (a HAPS system: router and generators) or an sft-train result (its router)")
        }
        return (label, try store.materialize(digest), kind, payload)
    }

    /// The ref, digest and run payload `target` names.
    static func resolve(_ target: String, in store: Store) throws -> (label: String, digest: Digest, payload: JSONValue?) {
        if let found = try RefLookup.find(target, pipeline: nil, in: store) {
            return ("\(found.pipeline)/\(found.stage)", found.ref.output, found.ref.payload)
        }
        guard let d = try store.resolveDigestPrefix(target) else {
            throw ServeError("'\(target)' is neither a stage with a stored result nor an artifact digest in \(store.root) (haps-pipe status lists them)")
        }
        // A digest: the run that made it says its settings.
        if let made = store.allRefs().first(where: { $0.ref.output == d }) {
            return ("\(made.pipeline)/\(made.stage)", d, made.ref.payload)
        }
        return (String(d.hex.prefix(12)), d, nil)
    }

    /// A candidate's model: the flag's (a directory, or a server's URL), the result's model
    /// input, or a local or server resource; nil when none is at hand.
    static func candidate(key: String, name: String, options: Options, inputs: JSONValue, resources: JSONValue, store: Store?,
                          engine: any Engine) throws -> (any ChatModel)? {
        if let given = options.models[name] ?? options.models[key] {
            if given.hasPrefix("http://") || given.hasPrefix("https://") { return try OpenAIChatModel(urls: [given], model: name) }
            guard FileIO.exists(given + "/config.json") else { throw ServeError("--model \(name)=\(given): no model directory there (no config.json)") }
            return try EngineChatModel(directory: given, name: name, engine: engine)
        }
        if let store, let hex = inputs["model_\(key)"]?.stringValue, let d = Digest(hex: hex) {
            return try EngineChatModel(directory: try store.materialize(d), name: "\(name)@\(hex.prefix(16))", engine: engine)
        }
        guard let resource = resources["models.\(key)"] else { return nil }
        if resource["backend"]?.stringValue == "local" {
            guard let path = resource["path"]?.stringValue else { return nil }
            return try EngineChatModel(directory: path, name: name, engine: engine)
        }
        return try Backends.model(resource, name: "models.\(key)")
    }

    /// A questions.jsonl path, or the file of a stored result of kind questions.
    static func questionsFile(_ given: String, in store: Store?) throws -> String {
        if FileIO.exists(given) && !FileIO.isDirectory(given) { return given }
        if FileIO.exists(given + "/questions.jsonl") { return given + "/questions.jsonl" }
        guard let store, let d = try RefLookup.artifactIfAny(given, pipeline: nil, in: store) else {
            throw ServeError("--questions \(given): neither a questions file nor a stored result\(store.map { " in \($0.root)" } ?? "")")
        }
        let m = try store.manifest(d)
        guard m.files["questions.jsonl"] != nil else { throw ServeError("--questions \(given): a '\(m.kind)' artifact, not questions") }
        return try store.materialize(d) + "/questions.jsonl"
    }
}
