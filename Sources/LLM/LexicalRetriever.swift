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
/// idf of Lucene's BM25 (`log(1 + (N - n + 0.5) / (n + 0.5))`, never negative).
public struct LexicalRetriever: Retriever {
    public var k1: Double
    public var b: Double
    public var identity: String { "lexical-bm25(k1=\(k1),b=\(b))" }

    public init(k1: Double = 1.5, b: Double = 0.75) { self.k1 = k1; self.b = b }

    /// The reference's server rejects an empty list; so does this.
    public struct EmptyParagraphs: Error, CustomStringConvertible {
        public var description: String { "no paragraphs to search" }
    }

    public func retrieve(entity: String, paragraphs: [String]) throws -> String {
        guard !paragraphs.isEmpty else { throw EmptyParagraphs() }
        return paragraphs[bestIndex(entity: entity, paragraphs: paragraphs)]
    }

    public func scores(entity: String, paragraphs: [String]) -> [Double] {
        let docs = paragraphs.map(LexicalRetriever.tokens)
        let query = LexicalRetriever.tokens(entity)
        let n = Double(docs.count)
        let avg = max(1e-9, docs.reduce(0.0) { $0 + Double($1.count) } / n)
        var df: [String: Int] = [:]
        for d in docs { for t in Set(d) { df[t, default: 0] += 1 } }
        return docs.map { d in
            var tf: [String: Int] = [:]
            for t in d { tf[t, default: 0] += 1 }
            var score = 0.0
            for q in query {
                guard let f = tf[q].map(Double.init) else { continue }
                let nq = Double(df[q] ?? 0)
                let idf = log(1 + (n - nq + 0.5) / (nq + 0.5))
                let lengthNorm: Double = 1 - b + b * Double(d.count) / avg
                let saturation: Double = f * (k1 + 1) / (f + k1 * lengthNorm)
                score += idf * saturation
            }
            return score
        }
    }

    public func bestIndex(entity: String, paragraphs: [String]) -> Int {
        let s = scores(entity: entity, paragraphs: paragraphs)
        var best = 0
        for i in s.indices where s[i] > s[best] { best = i }
        return best
    }

    static func tokens(_ text: String) -> [String] {
        var out: [String] = []
        var current = String.UnicodeScalarView()
        func flush() { if !current.isEmpty { out.append(String(current)); current = String.UnicodeScalarView() } }
        for c in text.unicodeScalars {
            if c.isASCII {
                let v = c.value
                if (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) { current.append(c) }
                else if v >= 0x41 && v <= 0x5A { current.append(Unicode.Scalar(v + 32)!) }
                else { flush() }
            } else if c.properties.isAlphabetic || c.properties.numericType != nil {
                current.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            } else {
                flush()
            }
        }
        flush()
        return out
    }
}
