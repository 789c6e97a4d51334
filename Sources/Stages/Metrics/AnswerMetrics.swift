/// F1, precision, recall and exact match of an answer, exactly as the reference computes them
/// (docs/data.md, Metrics, HotpotQA's official script plus the reference's EM quirk).
///
///     let m = AnswerMetrics(prediction: "The Las Vegas.", groundTruth: "Las Vegas")
///     m.f1    // 1.0
///     m.em    // 1
public struct AnswerMetrics: Sendable, Equatable {
    public var f1: Double
    public var precision: Double
    public var recall: Double
    public var em: Int

    public init(f1: Double, precision: Double, recall: Double, em: Int) {
        self.f1 = f1; self.precision = precision; self.recall = recall; self.em = em
    }

    public init(prediction: String, groundTruth: String) {
        let p = AnswerMetrics.normalize(prediction), t = AnswerMetrics.normalize(groundTruth)
        (f1, precision, recall) = AnswerMetrics.f1(normalizedPrediction: p, normalizedTruth: t)
        em = AnswerMetrics.exactMatch(normalizedPrediction: p, normalizedTruth: t)
    }

    /// The RL reward: F1, except that an F1 of exactly 0 is -1.
    public var reward: Double { f1 == 0 ? -1 : f1 }

    static let punctuation = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars)

    /// lower-case → drop ASCII punctuation → articles (whole words a, an, the) to spaces →
    /// split on whitespace and join with single spaces.
    public static func normalize(_ s: String) -> String {
        let lowered = PythonText.lower(s)
        var scalars: [Unicode.Scalar] = []
        for c in lowered.unicodeScalars where !punctuation.contains(c) { scalars.append(c) }
        // re.sub(r'\b(a|an|the)\b', ' ', text): a maximal run of word characters equal to an
        // article becomes one space.
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            guard PythonText.isWordCharacter(scalars[i]) else { out.append(scalars[i]); i += 1; continue }
            var j = i
            while j < scalars.count && PythonText.isWordCharacter(scalars[j]) { j += 1 }
            let word = scalars[i..<j]
            if word.elementsEqual("a".unicodeScalars) || word.elementsEqual("an".unicodeScalars) || word.elementsEqual("the".unicodeScalars) {
                out.append(" ")
            } else {
                out.append(contentsOf: word)
            }
            i = j
        }
        return PythonText.split(String(out)).joined(separator: " ")
    }

    static let special: Set<String> = ["yes", "no", "noanswer"]

    /// Python compares strings by code points; Swift's `==` by canonical equivalence ("é" and
    /// "e\u{301}" are equal to Swift, not to Python), so all comparisons here use code points.
    static func same(_ a: String, _ b: String) -> Bool { a.unicodeScalars.elementsEqual(b.unicodeScalars) }
    static func codePoints(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

    static func f1(normalizedPrediction p: String, normalizedTruth t: String) -> (Double, Double, Double) {
        let isSpecial = { (s: String) in special.contains { same($0, s) } }
        if isSpecial(p) && !same(p, t) { return (0, 0, 0) }
        if isSpecial(t) && !same(p, t) { return (0, 0, 0) }
        let pt = PythonText.split(p), tt = PythonText.split(t)
        var counts: [[UInt32]: Int] = [:]
        for w in tt { counts[codePoints(w), default: 0] += 1 }
        var common = 0
        for w in pt {
            let k = codePoints(w)
            if let c = counts[k], c > 0 { counts[k] = c - 1; common += 1 }
        }
        if common == 0 { return (0, 0, 0) }
        let precision = 1.0 * Double(common) / Double(pt.count)
        let recall = 1.0 * Double(common) / Double(tt.count)
        return ((2 * precision * recall) / (precision + recall), precision, recall)
    }

    /// 1 if the truth is "yes"/"no" and occurs in the first three characters of the prediction
    /// (so "not sure" matches "no": the reference's quirk); else 1 if equal; else 0.
    static func exactMatch(normalizedPrediction p: String, normalizedTruth t: String) -> Int {
        if same(t, "yes") || same(t, "no") {
            let head = Array(p.unicodeScalars.prefix(3)), needle = Array(t.unicodeScalars)
            if head.count >= needle.count {
                for start in 0...(head.count - needle.count) where Array(head[start..<(start + needle.count)]) == needle { return 1 }
            }
        }
        return same(p, t) ? 1 : 0
    }
}
