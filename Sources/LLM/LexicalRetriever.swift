import NN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// BM25 over a question's own paragraphs, in process: the `lexical` retriever backend.
/// Returns the single best paragraph (the first on ties), as the reference's retriever does.
///
///     let r = LexicalRetriever()
///     try r.retrieve(entity: "Reggie Jackson", paragraphs: q.paragraphs)
///
/// Tokens are maximal runs of letters and digits, lower-cased. k1 = 1.5, b = 0.75, and the
/// idf of Lucene's BM25 (`log(1 + (N - n + 0.5) / (n + 0.5))`, never negative). A paragraph
/// that begins with the whole query (its subject: encyclopedia paragraphs name it first, and
/// titles are not in the text) gains `subjectBoost` × the query's summed idf, so that
/// "Kesen Voreltha" finds Kesen Voreltha's paragraph rather than a shorter one that mentions
/// the name ("founded by Kesen Voreltha").
public struct LexicalRetriever: Retriever {
    public var k1: Double
    public var b: Double
    public var subjectBoost: Double
    public var identity: String { "lexical-bm25(k1=\(k1),b=\(b)" + (subjectBoost == 0 ? ")" : ",subject=\(subjectBoost))") }
    /// Indexes of recently searched paragraph lists: a dialogue searches the same question's
    /// paragraphs at every step and for every role assignment.
    private let cache = IndexCache()

    public init(k1: Double = 1.5, b: Double = 0.75, subjectBoost: Double = 1) { self.k1 = k1; self.b = b; self.subjectBoost = subjectBoost }

    /// The reference's server rejects an empty list; so does this.
    public struct EmptyParagraphs: Error, CustomStringConvertible {
        public var description: String { "no paragraphs to search" }
    }

    public func retrieve(entity: String, paragraphs: [String]) throws -> String {
        guard !paragraphs.isEmpty else { throw EmptyParagraphs() }
        return paragraphs[bestIndex(entity: entity, paragraphs: paragraphs)]
    }

    /// Term counts of each paragraph and the number of paragraphs holding each term.
    struct Index {
        var termCounts: [[String: Int]]
        var lengths: [Int]
        var documentFrequency: [String: Int]
        var leading: [ArraySlice<String>]     // each paragraph's first tokens
        init(_ paragraphs: [String]) {
            termCounts = []; lengths = []; documentFrequency = [:]; leading = []
            for p in paragraphs {
                var tf: [String: Int] = [:]
                let tokens = LexicalRetriever.tokens(p)
                leading.append(tokens.prefix(16))
                for t in tokens { tf[t, default: 0] += 1 }
                for t in tf.keys { documentFrequency[t, default: 0] += 1 }
                termCounts.append(tf); lengths.append(tokens.count)
            }
        }
    }

    final class IndexCache: @unchecked Sendable {
        private let lock = Lock()
        private var entries: [[String]: Index] = [:]
        func index(_ paragraphs: [String]) -> Index {
            if let i = lock.withLock({ entries[paragraphs] }) { return i }
            let i = Index(paragraphs)
            lock.withLock {
                if entries.count >= 1024 { entries.removeAll(keepingCapacity: true) }
                entries[paragraphs] = i
            }
            return i
        }
    }

    public func scores(entity: String, paragraphs: [String]) -> [Double] {
        let index = cache.index(paragraphs)
        let query = LexicalRetriever.tokens(entity)
        let n = Double(paragraphs.count)
        let avg = max(1e-9, Double(index.lengths.reduce(0, +)) / n)
        return index.termCounts.indices.map { d in
            let tf = index.termCounts[d]
            var score = 0.0, idfSum = 0.0
            for q in query {
                guard let f = tf[q].map(Double.init) else { continue }
                let nq = Double(index.documentFrequency[q] ?? 0)
                let idf = log(1 + (n - nq + 0.5) / (nq + 0.5))
                let lengthNorm: Double = 1 - b + b * Double(index.lengths[d]) / avg
                let saturation: Double = f * (k1 + 1) / (f + k1 * lengthNorm)
                score += idf * saturation
                idfSum += idf
            }
            if subjectBoost != 0, !query.isEmpty, index.leading[d].starts(with: query) { score += subjectBoost * idfSum }
            return score
        }
    }

    public func bestIndex(entity: String, paragraphs: [String]) -> Int {
        let s = scores(entity: entity, paragraphs: paragraphs)
        var best = 0
        for i in s.indices where s[i] > s[best] { best = i }
        return best
    }

    /// Maximal runs of letters and digits, lower-cased (built as UTF-8 bytes: the hot path).
    static func tokens(_ text: String) -> [String] {
        var out: [String] = []
        var current: [UInt8] = []
        current.reserveCapacity(32)
        func flush() { if !current.isEmpty { out.append(String(decoding: current, as: UTF8.self)); current.removeAll(keepingCapacity: true) } }
        for c in text.unicodeScalars {
            let v = c.value
            if v < 0x80 {
                if (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) { current.append(UInt8(v)) }
                else if v >= 0x41 && v <= 0x5A { current.append(UInt8(v + 32)) }
                else { flush() }
            } else if c.properties.isAlphabetic || c.properties.numericType != nil {
                current.append(contentsOf: c.properties.lowercaseMapping.utf8)
            } else {
                flush()
            }
        }
        flush()
        return out
    }
}
