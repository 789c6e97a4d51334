public import Pipeline

/// The HAPS stage types, registered alongside the framework's own (`command`).
///
/// Later issues add `sample`, `score`, `build-sft`, `sft-train`, `rl-train`, `evaluate`,
/// `synth-data` and `train-agent` here.
public enum HAPSStages {
    public static var registry: StageRegistry {
        StageRegistry.builtin
    }
}
