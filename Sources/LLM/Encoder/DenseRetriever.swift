import NN

/// The `dense` retriever backend: the reference's rule (docs/sampling.md and the reference's dialogue code: embed the entity and
/// every paragraph, return the single paragraph with the highest dot product, the first on ties)
/// with a sentence encoder such as all-MiniLM-L6-v2, in process. Embeddings are cached by text
/// (one cache per encoder, so by model and text): a dialogue searches the same question's
/// paragraphs at every step, so each paragraph is embedded once per run.
///
///     let r = try DenseRetriever(encoder: SentenceEncoder(directory: "models/all-MiniLM-L6-v2"))
///     try r.retrieve(entity: "Reggie Jackson", paragraphs: q.paragraphs)
public final class DenseRetriever: Retriever, @unchecked Sendable {
    public let encoder: SentenceEncoder
    private let lock = Lock()
    private var cache: [String: [Float]] = [:]
    private let capacity: Int
    private var made = 0, reused = 0

    public var identity: String { "dense:\(encoder.name)" }

    public init(encoder: SentenceEncoder, cacheCapacity: Int = 200_000) {
        self.encoder = encoder; self.capacity = cacheCapacity
    }

    /// Embeddings computed and embeddings served from the cache so far.
    public var cacheCounts: (computed: Int, reused: Int) { lock.withLock { (made, reused) } }

    public func retrieve(entity: String, paragraphs: [String]) throws -> String {
        guard !paragraphs.isEmpty else { throw LexicalRetriever.EmptyParagraphs() }
        return paragraphs[try bestIndex(entity: entity, paragraphs: paragraphs)]
    }

    public func bestIndex(entity: String, paragraphs: [String]) throws -> Int {
        let vectors = try embeddings([entity] + paragraphs)
        let query = vectors[0]
        var best = 0, bestScore = -Float.infinity
        for (i, v) in vectors.dropFirst().enumerated() {
            var s: Float = 0
            for d in 0..<query.count { s += query[d] * v[d] }
            if s > bestScore { best = i; bestScore = s }
        }
        return best
    }

    /// Embeddings of `texts`, computing only those not cached (in one batch).
    public func embeddings(_ texts: [String]) throws -> [[Float]] {
        var found: [[Float]?] = lock.withLock { texts.map { cache[$0] } }
        let missing = Array(Set(texts.indices.filter { found[$0] == nil }.map { texts[$0] }))
        let computed = missing.isEmpty ? [] : try encoder.embed(missing)
        var fresh: [String: [Float]] = [:]
        for (t, e) in zip(missing, computed) { fresh[t] = e }
        lock.withLock {
            if cache.count + fresh.count > capacity { cache.removeAll(keepingCapacity: true) }
            cache.merge(fresh) { a, _ in a }
            made += fresh.count; reused += texts.count - texts.indices.filter { found[$0] == nil }.count
        }
        for i in texts.indices where found[i] == nil { found[i] = fresh[texts[i]] }
        return found.map { $0! }
    }
}
