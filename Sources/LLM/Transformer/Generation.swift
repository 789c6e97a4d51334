import NN
#if canImport(Glibc)
import Glibc
#endif

/// What to generate for one sequence.
public struct GenerationRequest: Sendable {
    public var prompt: [Int]
    public var maxNewTokens: Int
    /// 0: greedy (the first of equal maxima, as torch.argmax).
    public var temperature: Float
    public var topP: Float
    public var seed: UInt64
    /// Generation ends after any of these (the model's end-of-sequence tokens, usually).
    public var stopTokens: Set<Int>
    public var lora: LoRAUpdate?
    /// Which tokens the top-p nucleus keeps (`TokenSampler.nucleus`).
    public var nucleusRule: NucleusRule
    /// The uniform in [0, 1) each sampled token draws, in order, given by the caller (so that
    /// two engines draw the same tokens from the same logits); nil: drawn from `seed`
    /// (`SamplingRandom`, one a sampled token: the same values `SamplingUniforms` gives).
    public var uniforms: [Float]?
    public init(prompt: [Int], maxNewTokens: Int, temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0,
                stopTokens: Set<Int> = [], lora: LoRAUpdate? = nil, nucleusRule: NucleusRule = .standard, uniforms: [Float]? = nil) {
        self.prompt = prompt; self.maxNewTokens = maxNewTokens; self.temperature = temperature; self.topP = topP
        self.seed = seed; self.stopTokens = stopTokens; self.lora = lora; self.nucleusRule = nucleusRule; self.uniforms = uniforms
    }
}

/// Which tokens a top-p nucleus keeps: the common rule, or the reference RL sampler's.
public enum NucleusRule: String, Sendable, CaseIterable {
    /// Keep tokens until the mass before the next reaches top_p (the crossing token is kept).
    case standard
    /// Keep tokens whose inclusive cumulative mass is at most top_p (the crossing token is dropped).
    case reference
}

/// Generated tokens with the log-probability of each: under the distribution it was drawn from
/// (softmax at the temperature, restricted to the top-p nucleus and renormalised, as
/// the reference's rl_batch.py; docs/routing.md defines it), or, when greedy, the model's plain log-softmax.
public struct GenerationResult: Sendable, Equatable {
    public var ids: [Int]
    public var logprobs: [Float]
    /// "stop" (a stop token was generated, and is included) or "length".
    public var finishReason: String
    public init(ids: [Int], logprobs: [Float], finishReason: String) {
        self.ids = ids; self.logprobs = logprobs; self.finishReason = finishReason
    }
}

/// xoshiro256** seeded through SplitMix64: a small, fast, reproducible generator for sampling.
public struct SamplingRandom: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)
    public init(seed: UInt64) {
        var x = seed
        func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
    /// Uniform in [0, 1).
    public mutating func unit() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }

    /// The first `count` uniforms of the stream seeded by `seed`: what a sampled call draws,
    /// one a token, when the caller gives them (`GenerationRequest.uniforms`).
    public static func uniforms(seed: UInt64, count: Int) -> [Float] {
        var r = SamplingRandom(seed: seed)
        return (0..<count).map { _ in r.unit() }
    }
}

/// Token choice from one row of logits.
public enum TokenSampler {
    /// The nucleus of a distribution: the most probable tokens, in decreasing probability, and
    /// their total mass. `.standard` (transformers, vLLM) keeps each token whose mass *before*
    /// it is below `topP`, so the token that crosses `topP` is kept; `.reference` (the reference's
    /// RL sampler, the reference's rl_batch.py; docs/routing.md, Joint RL) keeps those whose *inclusive* mass is at most `topP`, so
    /// the crossing token is dropped. Both always keep the most probable token.
    public static func nucleus(_ probs: [Float], topP: Float, rule: NucleusRule = .standard) -> (tokens: [Int], mass: Float) {
        if topP >= 1 { return (Array(probs.indices), probs.reduce(0, +)) }
        let order = probs.indices.sorted { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
        var kept: [Int] = [], mass: Float = 0
        for i in order {
            switch rule {
            case .standard: if mass >= topP { return (kept, mass) }
            case .reference: if !kept.isEmpty && mass + probs[i] > topP { return (kept, mass) }
            }
            kept.append(i); mass += probs[i]
        }
        return (kept, mass)
    }

    /// Picks a token and its log-probability (see `GenerationResult`); a sampled pick takes
    /// the next uniform from `uniform` (greedy takes none).
    public static func choose(_ logits: UnsafeBufferPointer<Float>, temperature: Float, topP: Float, rule: NucleusRule = .standard,
                              uniform: () -> Float) -> (token: Int, logprob: Float) {
        let n = logits.count
        if temperature <= 0 {
            var best = 0
            for i in 1..<n where logits[i] > logits[best] { best = i }
            return (best, logits[best] - Kernels.logSumExp(logits.baseAddress!, count: n))
        }
        var probs = logits.map { $0 / temperature }
        probs.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, count: n) }
        let (tokens, mass) = nucleus(probs, topP: topP, rule: rule)
        var u = uniform() * mass
        var pick = tokens.last!
        for t in tokens {
            if u < probs[t] { pick = t; break }
            u -= probs[t]
        }
        return (pick, logf(probs[pick] / mass))
    }
}

extension DecoderModel {
    /// Generates for every request at once: one batched prefill, then one batched step per new
    /// token over the sequences still running (each on its own KV cache and LoRA update).
    public func generate(_ requests: [GenerationRequest]) throws -> [GenerationResult] {
        try generate(requests, captures: requests.map { _ in nil })
    }

    /// `captures[i]`, when given, receives request i's last-layer rows of every step (one pass
    /// gives the LoRA gradient: `generateWithLoRAGradient`).
    func generate(_ requests: [GenerationRequest], captures: [LoRACapture?]) throws -> [GenerationResult] {
        for r in requests where r.temperature > 0 && (r.uniforms?.count ?? r.maxNewTokens) < r.maxNewTokens {
            throw ModelError("generate", "a sampled request of up to \(r.maxNewTokens) tokens was given \(r.uniforms?.count ?? 0) uniforms")
        }
        var results = requests.map { _ in GenerationResult(ids: [], logprobs: [], finishReason: "length") }
        var randoms = requests.map { SamplingRandom(seed: $0.seed) }
        var drawn = requests.map { _ in 0 }
        let caches = requests.map { _ in KVCache(layers: config.layers) }
        var active = requests.indices.filter { requests[$0].maxNewTokens > 0 && !requests[$0].prompt.isEmpty }
        var next: [Int: [Int]] = [:]
        for i in active { next[i] = requests[i].prompt }
        while !active.isEmpty {
            let segments = active.map { i in
                var s = Segment(tokens: next[i]!, cache: caches[i], lora: requests[i].lora)
                s.capture = captures[i]
                return s
            }
            let logits = try forward(segments)
            var still: [Int] = []
            for (row, i) in active.enumerated() {
                let r = requests[i]
                let (token, logprob) = logits.data.withUnsafeBufferPointer { lp in
                    TokenSampler.choose(UnsafeBufferPointer(rebasing: lp[(row * config.vocabSize)..<((row + 1) * config.vocabSize)]),
                                        temperature: r.temperature, topP: r.topP, rule: r.nucleusRule) {
                        defer { drawn[i] += 1 }
                        guard let given = r.uniforms else { return randoms[i].unit() }
                        return given[drawn[i]]
                    }
                }
                results[i].ids.append(token); results[i].logprobs.append(logprob)
                if r.stopTokens.contains(token) { results[i].finishReason = "stop"; continue }
                if results[i].ids.count >= r.maxNewTokens { continue }
                next[i] = [token]
                still.append(i)
            }
            active = still
        }
        return results
    }
}
