/// Finds the candidate closest to a misspelt name, for "did you mean ...?" hints.
public enum NearestName {
    /// The closest candidate by edit distance, if it is close enough to be a plausible typo
    /// (distance at most a third of the longer name, and at least 1 edit allowed up to 3).
    public static func suggest(_ name: String, among candidates: some Sequence<String>) -> String? {
        var best: (String, Int)?
        for c in candidates {
            let d = distance(name.lowercased(), c.lowercased())
            if best == nil || d < best!.1 || (d == best!.1 && c < best!.0) { best = (c, d) }
        }
        guard let (candidate, d) = best else { return nil }
        let allowed = max(1, min(3, max(name.count, candidate.count) / 3))
        return d <= allowed ? candidate : nil
    }

    /// Damerau-Levenshtein distance (optimal string alignment): transpositions count as one edit.
    public static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { d[i][0] = i }
        for j in 0...y.count { d[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[x.count][y.count]
    }

    /// "; did you mean 'x'?" when one is close, else "; one of: a, b, c" — for closed sets of values.
    public static func hintOrChoices(_ name: String, among candidates: [String]) -> String {
        let h = hint(name, among: candidates)
        return h.isEmpty ? "; one of: " + candidates.joined(separator: ", ") : h
    }

    /// " Did you mean 'x'?" or "" — appended to messages about unknown names.
    public static func hint(_ name: String, among candidates: some Sequence<String>, what: String = "") -> String {
        guard let s = suggest(name, among: candidates) else { return "" }
        return "; did you mean \(what.isEmpty ? "" : what + " ")'\(s)'?"
    }
}
