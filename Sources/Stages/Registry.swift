public import Pipeline

/// The HAPS stage types, registered alongside the framework's own (`command`).
public enum HAPSStages {
    public static var registry: StageRegistry {
        var r = StageRegistry.builtin
        r.register(QuestionsStage.self)
        r.register(SampleStage.self)
        r.register(ScoreStage.self)
        r.register(ImportStage.self)
        r.register(BuildSFTStage.self)
        r.register(TrainDecoderStage.self)
        r.register(SynthDataStage.self)
        r.register(TrainAgentStage.self)
        r.register(EmbedStage.self)
        r.register(RouteTableStage.self)
        r.register(SFTTrainStage.self)
        r.register(RLTrainStage.self)
        r.register(EvaluateStage.self)
        return r
    }
}
