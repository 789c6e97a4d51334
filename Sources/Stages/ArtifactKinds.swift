public import Pipeline

/// The artifact kinds of the HAPS stage types, named once. A stage declares the kind of each
/// input and of its output with these; the spec loader checks that producers and consumers agree.
extension ArtifactKind {
    /// HotpotQA questions (`questions.jsonl`), from `questions` or `synth-data`.
    public static let questions: ArtifactKind = "questions"
    /// Every question × role assignment with its answer (`samples.jsonl`, the reference's
    /// `baseline.jsonl`, transcripts), from `sample`; a user's own `baseline.jsonl` is one too.
    public static let samples: ArtifactKind = "samples"
    /// Per question and action F1/EM/P/R, and the summary figures, from `score`.
    public static let scoreTable: ArtifactKind = "score-table"
    /// The router's SFT rows (`sft.json`), from `build-sft`.
    public static let sftData: ArtifactKind = "sft-data"
    /// A Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
    public static let model: ArtifactKind = "model"
    /// Question texts and their sentence embeddings (`embeddings.safetensors`, `texts.jsonl`),
    /// from `embed`: what the embedding routers and `evaluate` read instead of embedding again.
    public static let embeddings: ArtifactKind = "embeddings"
    /// A high-level router (`router.json` and its arrays or model), from `route-table` or
    /// `sft-train`: anything `RouterArtifacts.load` reads.
    public static let router: ArtifactKind = "router"
    /// The jointly trained router and parameter generators (`router.json` and the model,
    /// `generators/generator<c>.safetensors`), from `rl-train`.
    public static let joint: ArtifactKind = "joint"
    /// Routers and baselines compared on a split (`report.md`, `results.json`, ...), from `evaluate`.
    public static let evaluation: ArtifactKind = "evaluation"
}
