#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import LLM
import NN
public import Pipeline

/// The `train-agent` stage: a small Llama-architecture candidate for the embedded default,
/// trained with the NN engine on the transcripts of `ExpertAgent` dialogues (both roles, the
/// embedded prompt set, mistakes and recoveries included) over generated questions. Its own
/// byte-level BPE tokenizer is trained on the same transcripts. Output kind `model`: a Hugging
/// Face model directory (config.json, model.safetensors, tokenizer.json) that the `local`
/// backend and `haps-pipe serve` load, plus `losses.jsonl`.
public struct TrainAgentStage: StageType {
    public struct Params: StageParameters {
        @Param("decoder layers") var layers = 2
        @Param("hidden size") var hidden_size = 64
        @Param("attention heads") var heads = 4
        @Param("key/value heads") var kv_heads = 2
        @Param("MLP size (default 3 × hidden_size)") var intermediate_size: Int? = nil
        @Param("its byte-level BPE vocabulary") var vocab_size = 768
        @Param("optimisation steps") var steps: Int
        @Param("turns per step") var batch_size = 8
        @Param("peak learning rate (cosine with 3% warm-up)") var lr = 0.003
        @Param("share of the expert's searches that first go to a confusable entity") var noise = 0.2
        @Param("weights of the training turns: bridge, comparison (question types), student, teacher (roles); 1 each when left out") var mix: [String: Double] = [:]
        @Param("search steps of the expert dialogues") var budget = Dialogue.defaultBudget
        @Param("longest training sequence in tokens; longer turns are cut from the left") var max_length = 384
        @Param("steps between checkpoints") var checkpoint_every = 50
        @Param("extra generated worlds to train on, each with names of its own, so that copying pays and memorising does not") var fresh_worlds = 40
        @Param("questions drawn from each fresh world") var fresh_questions = 40
        @Param("of the fresh worlds' distractors") var difficulty = SynthQuestions.Difficulty.hard
        @Param("the planted world's phrase (a test world: docs/routing.md): it ends the fresh worlds' comparison answers, as synth-data's planted_phrase ends the input's, and the expert wrongly appends it to a share planted_rate of the bridge answers") var planted_phrase: String? = nil
        @Param("the share of bridge answers the expert ends with planted_phrase (the planted defect)") var planted_rate: Double? = nil
        @Param("of the steps, how many come first and train on copy exercises (a transcript window, then the same window again), where small models learn to copy in a few hundred steps") var copy_steps = 0
        public init() {}
    }

    public static let name = "train-agent"
    public static let version = 3
    public static let summary = "Train a small candidate LLM on scripted expert dialogues over generated questions."
    static let mixKeys = ["bridge", "comparison", "student", "teacher"]
    static let special = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

    public static func ports(_ p: Params) -> StagePorts {
        StagePorts(inputs: [InputPort("questions", kind: .questions, help: "generated training questions (synth-data)")], output: .model)
    }

    public static func validate(_ p: Params, at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        for (k, w) in p.mix {
            if !mixKeys.contains(k) { problems.append(SpecProblem(path.appending("mix").appending(k), "unknown weight" + NearestName.hintOrChoices(k, among: mixKeys))) }
            if w < 0 { problems.append(SpecProblem(path.appending("mix").appending(k), "expected a non-negative weight")) }
        }
        let hidden = p.hidden_size, heads = p.heads, kv = p.kv_heads
        if heads < 1 || hidden % heads != 0 { problems.append(SpecProblem(path.appending("heads"), "hidden_size \(hidden) is not a multiple of heads \(heads)")) }
        if kv < 1 || heads % kv != 0 { problems.append(SpecProblem(path.appending("kv_heads"), "heads \(heads) is not a multiple of kv_heads \(kv)")) }
        if p.steps < 1 { problems.append(SpecProblem(path.appending("steps"), "expected a positive integer")) }
        if p.vocab_size < 300 { problems.append(SpecProblem(path.appending("vocab_size"), "expected at least 300 (256 bytes, special tokens, merges)")) }
        if let rate = p.planted_rate {
            if !(0...1).contains(rate) { problems.append(SpecProblem(path.appending("planted_rate"), "expected a number from 0 to 1")) }
            if p.planted_phrase == nil { problems.append(SpecProblem(path.appending("planted_rate"), "needs planted_phrase")) }
        }
        if !(0...1).contains(p.noise) { problems.append(SpecProblem(path.appending("noise"), "expected a number from 0 to 1")) }
        return problems
    }

    /// One training turn: the chat-templated prompt and the expert's reply.
    struct Turn { var prompt: String; var reply: String; var role: DialogueTurn.Role; var bridge: Bool }

    /// The expert's dialogues over `questions`, turn by turn.
    static func expertTurns(_ questions: [HotpotQuestion], noise: Double, seed: UInt64, budget: Int,
                            defect: (phrase: String, rate: Double)? = nil) throws -> [Turn] {
        let expert = ExpertAgent(questions: questions, noise: noise, seed: seed, defect: defect)
        let dialogue = Dialogue(prompts: .embedded, budget: budget, settings: GenerationSettings())
        var turns: [Turn] = []
        for q in questions {
            let r = try dialogue.run(question: q.question, paragraphs: q.paragraphs, student: expert, teacher: expert, retriever: LexicalRetriever())
            for t in r.turns {
                turns.append(Turn(prompt: ChatTemplate.llama3.render([.user(t.prompt)]), reply: t.reply, role: t.role, bridge: q.type != "comparison"))
            }
        }
        return turns
    }

    public static func run(_ p: Params, _ context: StageContext) throws {
        var questions = try HotpotQA.load(context.inputs["questions"]!.path(of: "questions.jsonl"))
        // Fresh worlds: new names every few questions, so the model must copy entities from the
        // question and the paragraphs rather than recall them.
        for w in 0..<p.fresh_worlds {
            var generator = SynthQuestions(world: SynthWorld(people: 40, seed: context.seed &+ 1_000_003 &* UInt64(w + 1)))
            generator.difficulty = p.difficulty
            generator.plantedPhrase = p.planted_phrase
            questions += generator.questions(p.fresh_questions, seed: context.seed &+ UInt64(w))
        }
        let defect = p.planted_phrase.map { (phrase: $0, rate: p.planted_rate ?? 0) }
        let turns = try expertTurns(questions, noise: p.noise, seed: context.seed, budget: p.budget, defect: defect)
        // Tokenizer: byte-level BPE trained on the transcripts (seeded sample, deterministic).
        var corpus = turns.map { $0.prompt + $0.reply }
        if corpus.count > 3000 {
            var rng = SeededRandom(seed: context.seed)
            corpus.shuffle(using: &rng)
            corpus = Array(corpus.prefix(3000))
        }
        let tokenizerJSON = BPETrainer.train(corpus, vocabularySize: p.vocab_size, specialTokens: special)
        let tokenizer = try BPETokenizer(json: tokenizerJSON, path: "tokenizer.json")
        let eot = tokenizer.addedTokens["<|eot_id|>"]!, end = tokenizer.addedTokens["<|end_of_text|>"]!
        // Examples: prompt tokens as context, reply + <|eot_id|> as targets, weighted by the mix.
        var examples: [(tokens: [Int], targetsFrom: Int)] = [], cumulative: [Double] = []
        for t in turns {
            let w = (p.mix[t.bridge ? "bridge" : "comparison"] ?? 1) * (p.mix[t.role == .student ? "student" : "teacher"] ?? 1)
            guard w > 0 else { continue }
            var prompt = tokenizer.encode(t.prompt)
            let reply = tokenizer.encode(t.reply) + [eot]
            if prompt.count + reply.count > p.max_length { prompt = Array(prompt.suffix(max(1, p.max_length - reply.count))) }
            examples.append((prompt + reply, prompt.count))
            cumulative.append((cumulative.last ?? 0) + w)
        }
        guard !examples.isEmpty else { throw DataError(file: "train-agent", line: nil, "the mix leaves no training turns") }
        let vocab = tokenizer.vocabularySize
        var config = DecoderConfig(family: .llama, vocabSize: vocab, hiddenSize: p.hidden_size, intermediateSize: p.intermediate_size ?? 3 * p.hidden_size,
                                   layers: p.layers, heads: p.heads, kvHeads: p.kv_heads, ropeTheta: 10000,
                                   bosTokenID: tokenizer.addedTokens["<|begin_of_text|>"], eosTokenIDs: [eot, end])
        config.rmsEps = 1e-5
        let steps = p.steps, size = p.batch_size
        try BLAS.shared().threads = context.threads
        let trainer = DecoderTrainer(model: try .randomlyInitialised(config, seed: context.seed), learningRate: Float(p.lr),
                                     schedule: .cosine(warmup: max(1, steps * 3 / 100), total: steps))
        trainer.threads = context.threads
        // Copy exercises: [bos] window [eot] window, targets on the repeat. This is what the
        // dialogues need (names from the question and the paragraphs into Search[...] and
        // Finish[...]), learnt on its own first, where the signal is not diluted.
        let copySteps = min(p.copy_steps, steps), bos = tokenizer.addedTokens["<|begin_of_text|>"]!
        func copyExercises(_ step: Int) -> [(tokens: [Int], targetsFrom: Int)] {
            var rng = SeededRandom(seed: context.seed ^ 0xC0FFEE, stream: UInt64(step))
            return (0..<size).map { _ in
                let source = examples[Int(rng.next() % UInt64(examples.count))].tokens
                let length = min(source.count, 16 + Int(rng.next() % 48))
                let start = Int(rng.next() % UInt64(source.count - length + 1))
                let window = Array(source[start..<(start + length)])
                return ([bos] + window + [eot] + window, length + 2)
            }
        }
        context.log("\(examples.count) training turns from \(questions.count) questions; vocabulary \(vocab); \(steps) steps of \(size)")
        let streams = BatchStreams(seed: context.seed)
        let losses = try TrainingLoop(steps: steps, checkpointEvery: p.checkpoint_every).run(trainer, context) { step in
            let picked = step < copySteps ? copyExercises(step) : streams.weighted(step: step, size: size, cumulative: cumulative).map { examples[$0] }
            let loss = try trainer.train(picked.map(\.tokens), targetsFrom: picked.map(\.targetsFrom))
            return .init(loss: Double(loss), tokens: picked.reduce(0) { $0 + $1.tokens.count })
        }
        try trainer.model.save(directory: context.outputDirectory)
        try FileIO.writeAtomically(tokenizerJSON.canonical + "\n", to: context.outputDirectory + "/tokenizer.json")
        try FileIO.writeAtomically(losses.jsonLines, to: context.outputDirectory + "/losses.jsonl")
        context.log("trained \(steps) steps: \(losses.summary)")
    }
}
