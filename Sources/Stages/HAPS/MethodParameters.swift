public import LLM
public import Pipeline

// The method's settings, each declared once (issue 26): stage types embed these groups in their
// `Params`, the trainers receive them as they are, and the direct commands read their flags,
// help and defaults from the same declarations.

/// The built-in prompt sets of the dialogue.
public enum BuiltinPrompts: String, ParameterEnum {
    case standard, embedded

    public var promptSet: PromptSet { self == .embedded ? .embedded : .standard }
}

/// What every stage that runs the teacher/student dialogue takes (`sample`, `rl-train`,
/// `evaluate`'s live rows): the candidates, the retriever, the search budget, the prompts and
/// the reply length. Sampling itself is each stage's: `sample` chooses its temperature, joint
/// RL samples as the reference (T 1.0, top-p 0.9), evaluation is greedy.
public struct DialogueParams: ParameterGroup {
    @Param("model resources (under resources.models), candidate 0 first") var candidates: [String] = []
    @Param("retriever resource") var retriever = "retriever"
    @Param("search steps per question") var budget = Dialogue.defaultBudget
    @Param("the built-in prompt set (when no prompts input is given)") var prompts = BuiltinPrompts.standard
    @Param("longest reply in tokens") var max_tokens = GenerationSettings.reference.maxTokens
    public init() {}

    /// The resources the dialogue reads: each candidate's model and the retriever.
    var resources: [String] { candidates.map { "models.\($0)" } + [retriever] }

    /// Problems with the values themselves; `requireCandidates`: the stage cannot run without.
    func validate(at path: JSONPath, requireCandidates: Bool) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if requireCandidates && candidates.isEmpty { problems.append(SpecProblem(path.appending("candidates"), "needs at least one candidate")) }
        if budget < 0 { problems.append(SpecProblem(path.appending("budget"), "expected a non-negative integer, found \(budget)")) }
        if max_tokens < 1 { problems.append(SpecProblem(path.appending("max_tokens"), "expected a positive integer, found \(max_tokens)")) }
        return problems
    }

    /// A candidate's one name, written in the rows' `teacher`/`student` fields and shown by every
    /// report downstream (score, evaluate, `show --question`): the resource's name in the spec
    /// (`agent_a` for `models.agent_a`), or its `name` field when it has one (to write the
    /// reference's own model names, e.g. "Llama-3.1-8B-Instruct"). Where the reference needs a
    /// candidate's index (actions, the router's reply), the index is its place in `candidates`.
    public static func candidateName(_ resource: JSONValue?, _ key: String) -> String {
        resource?["name"]?.stringValue ?? key
    }

    /// Every candidate's name, in order.
    func names(_ resources: [String: JSONValue]) -> [String] {
        candidates.map { DialogueParams.candidateName(resources["models.\($0)"], $0) }
    }

    /// The stage's `prompts` input read as a prompt set (either layout, `PromptSet.load`), or
    /// nil for the built-in set.
    static func promptsInput(_ context: StageContext) throws -> PromptSet? {
        try context.inputs["prompts"].map { try PromptSet.load(directory: $0.directory) }
    }

    /// The dialogue's sampler for a stage: its prompts (a `prompts` input's set, else the
    /// built-in one), budget, reply settings (`settings`, with `max_tokens`) and retriever.
    func sampler(_ context: StageContext, settings: GenerationSettings, prompts input: PromptSet? = nil,
                 prices: [DialogueSampler.Price?]? = nil) throws -> DialogueSampler {
        let retriever = try Backends.retriever(context.resources[self.retriever]!, name: self.retriever, baseDirectory: context.baseDirectory)
        return DialogueSampler(dialogue: dialogue(settings: settings, prompts: input), retriever: retriever, names: names(context.resources),
                               prices: prices)
    }

    /// The dialogue: the prompts (`input`, else the built-in set), the budget, and `settings`
    /// at this reply length (every call of the stage, training and evaluation alike).
    func dialogue(settings: GenerationSettings, prompts input: PromptSet? = nil) -> Dialogue {
        var settings = settings
        settings.maxTokens = max_tokens
        return Dialogue(prompts: input ?? prompts.promptSet, budget: budget, settings: settings)
    }

    /// Every candidate's weights must be at hand (a `model_<name>` input or a local resource):
    /// said before anything runs, not after hours of sampling. `needs`: why, in words.
    func weightsPreflight(resources: [String: JSONValue], inputs: Set<String>, needs: String) -> [String] {
        candidates.compactMap { c in
            let resource = resources["models.\(c)"]
            if inputs.contains("model_\(c)") || (resource?["backend"]?.stringValue == "local" && resource?["path"] != nil) { return nil }
            let backend = resource?["backend"]?.stringValue ?? "?"
            return "candidate '\(c)' is a\(backend.first.map { "aeiou".contains($0) } == true ? "n" : "") \(backend) server, and \(needs): "
                + "wire its model directory as input 'model_\(c)' (a Hugging Face directory), or make resources.models.\(c) a local model"
        }
    }

    /// The candidates as local models in `engine`: a `model_<name>` input (named with its
    /// content digest, so that a memo never replays another version's calls), or a `local`
    /// resource. Servers give no gradients and take no updates, so anything else is an error
    /// that says so.
    func localCandidates(_ context: StageContext, engine: any Engine, needs: String) throws -> [EngineChatModel] {
        try candidates.map { c in
            let resource = context.resources["models.\(c)"]!
            let name = DialogueParams.candidateName(resource, c)
            if let input = context.inputs["model_\(c)"] {
                return try EngineChatModel(directory: input.directory, name: "\(name)@\(input.digest.hex.prefix(16))", engine: engine)
            }
            guard resource["backend"]?.stringValue == "local", let path = resource["path"]?.stringValue else {
                throw RouterError("\(needs): candidate '\(c)' must be a local model (resources.models.\(c) with backend local and a path, or a model_\(c) input); a server gives none")
            }
            return try EngineChatModel(directory: Backends.resolve(path, context.baseDirectory), name: name, engine: engine)
        }
    }
}

/// Joint RL's settings (the reference's `rl_batch.py` flags, and the variants beyond it),
/// declared once: `rl-train`'s parameters, and what `JointRLTrainer` reads.
public struct JointRLSettings: ParameterGroup {
    @Param("the router's learning rate (the script's default; the README's command passes 1e-6)") var high_router_lr = 5e-6
    @Param("the generators' learning rate") var low_router_lr = 1e-5
    @Param("the LoRA update's scale (0: no low-level router)") var alpha = 0.01
    @Param("candidate layers (from the last) whose o_proj gets the update") var layers = 1
    @Param("the update's rank") var lora_r = 8
    @Param("what the generators read: the router's last hidden states averaged over the whole routing prompt (prompt; none: the reference's) or over the question's tokens only (question)")
    var pooling: Pooling? = nil
    @Param("the generator's hidden Linear+ReLU layers before its heads") var mlp_num_layer = 2
    @Param("the width of the generator's hidden layers (the reference's 256)") var mlp_hidden_dim = 256
    @Param("the gradient through the pooled state into the router backbone (false: no sharing)") var backbone_gradient = true
    @Param("keep the router's weights fixed") var router_frozen = false
    @Param("subtract the mean of the last N rewards from the reward (0: none, as the reference)") var baseline_window = 0
    @Param("dialogues sampled per question, their gradients averaged (1: the reference)") var samples = 1
    @Param("with samples > 1, each reward less the mean of the other samples' rewards") var group_baseline = false
    @Param("training questions a step: their gradients averaged into one update, the learning rates stepping once an update (1: the reference)")
    var questions_per_update = 1
    @Param("round the router's weights to bfloat16 at the start and after each update (the reference trains in bf16)") var router_bf16 = false
    public init() {}

    func validate(at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        for (name, value) in [("layers", layers), ("lora_r", lora_r), ("mlp_num_layer", mlp_num_layer), ("mlp_hidden_dim", mlp_hidden_dim),
                              ("samples", samples), ("questions_per_update", questions_per_update)] where value < 1 {
            problems.append(SpecProblem(path.appending(name), "expected a positive integer, found \(value)"))
        }
        if baseline_window < 0 { problems.append(SpecProblem(path.appending("baseline_window"), "expected 0 or more, found \(baseline_window)")) }
        if samples > 64 { problems.append(SpecProblem(path.appending("samples"), "expected at most 64, found \(samples)")) }
        if questions_per_update > 64 {
            problems.append(SpecProblem(path.appending("questions_per_update"), "expected at most 64, found \(questions_per_update)"))
        }
        if group_baseline && samples < 2 {
            problems.append(SpecProblem(path.appending("group_baseline"), "a group baseline needs samples of 2 or more (found \(samples))"))
        }
        if group_baseline && baseline_window > 0 {
            problems.append(SpecProblem(path.appending("baseline_window"), "choose one baseline: group_baseline or baseline_window"))
        }
        return problems
    }

    /// The variant in words ("as the reference" when it is the reference's).
    var variant: String {
        var parts: [String] = []
        if alpha == 0 { parts.append("no low-level router (alpha 0)") }
        if !backbone_gradient { parts.append("no sharing (no backbone gradient)") }
        if router_frozen { parts.append("router frozen") }
        if samples > 1 { parts.append("\(samples) dialogues a question" + (group_baseline ? " with a group baseline" : "")) }
        if baseline_window > 0 { parts.append("reward baseline over the last \(baseline_window)") }
        if questions_per_update > 1 { parts.append("\(questions_per_update) questions an update") }
        if router_bf16 { parts.append("bf16 router") }
        if pooling == .question { parts.append("pooled over the question") }
        return parts.isEmpty ? "as the reference" : parts.joined(separator: ", ")
    }
}
