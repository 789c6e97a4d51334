/// Parses agents' replies exactly as the reference's regular expressions do (docs/sampling.md and the reference's dialogue code),
/// with Python `re` semantics: Unicode `\w` and `\s`, case-insensitive literals with Python's
/// case equivalences (`ı` matches `i`, `ſ` matches `s`, `İ` matches `i`), `^` at line starts.
///
/// The reference's patterns, as this parser implements them (checked against python3's `re`
/// on generated replies in the tests):
///
///     thought  (?is)(?<!\w)Thought:\s*(.*?)(?:\n\s*Action:|$)
///     action   (?is)(?<!\w)Action:\s*(.*)
///     summary  (?ims)^\s*Summary\s*:\s*(.*?)(?=^\s*\w+\s*:|\Z)
public enum ReplyParser {
    typealias Scalars = [Unicode.Scalar]

    /// `str.strip()`.
    public static func strip(_ s: String) -> String {
        let a = Array(s.unicodeScalars)
        var lo = 0, hi = a.count
        while lo < hi && PythonText.isSpace(a[lo]) { lo += 1 }
        while hi > lo && PythonText.isSpace(a[hi - 1]) { hi -= 1 }
        return String(String.UnicodeScalarView(a[lo..<hi]))
    }

    /// Thought and action of a think reply (already stripped by the caller, as the reference
    /// strips it), or nil when either is missing. Both come back stripped, the action cut just
    /// after its first `]`.
    public static func thoughtAndAction(_ reply: String) -> (thought: String, action: String)? {
        let s = Array(reply.unicodeScalars)
        guard let t = find(s, "thought:"), let a = find(s, "action:") else { return nil }
        var start = t
        while start < s.count && PythonText.isSpace(s[start]) { start += 1 }
        var end = start
        while end < s.count && !(s[end] == "\n" && followsAction(s, end + 1)) { end += 1 }
        var actionStart = a
        while actionStart < s.count && PythonText.isSpace(s[actionStart]) { actionStart += 1 }
        let thought = strip(String(String.UnicodeScalarView(s[start..<end])))
        var action = Array(strip(String(String.UnicodeScalarView(s[actionStart...]))).unicodeScalars)
        if let bracket = action.firstIndex(of: "]") { action = Array(action[...bracket]) }
        return (thought, String(String.UnicodeScalarView(action)))
    }

    /// The summary of a summarize reply, or nil when it has no `Summary:` at a line start.
    public static func summary(_ reply: String) -> String? {
        let s = Array(reply.unicodeScalars)
        var p = 0
        while p <= s.count {
            if p == 0 || s[p - 1] == "\n" {
                var q = p
                while q < s.count && PythonText.isSpace(s[q]) { q += 1 }
                if let r = matchLiteral(s, q, "summary") {
                    var colon = r
                    while colon < s.count && PythonText.isSpace(s[colon]) { colon += 1 }
                    if colon < s.count && s[colon] == ":" {
                        var start = colon + 1
                        while start < s.count && PythonText.isSpace(s[start]) { start += 1 }
                        var end = start
                        while end < s.count && !((end == 0 || s[end - 1] == "\n") && startsKeyLine(s, end)) { end += 1 }
                        return strip(String(String.UnicodeScalarView(s[start..<end])))
                    }
                }
            }
            p += 1
        }
        return nil
    }

    /// `\s*\w+\s*:` at `i`.
    static func startsKeyLine(_ s: Scalars, _ i: Int) -> Bool {
        var j = i
        while j < s.count && PythonText.isSpace(s[j]) { j += 1 }
        let w = j
        while j < s.count && PythonText.isWordCharacter(s[j]) { j += 1 }
        guard j > w else { return false }
        while j < s.count && PythonText.isSpace(s[j]) { j += 1 }
        return j < s.count && s[j] == ":"
    }

    /// `\s*Action:` at `i`.
    static func followsAction(_ s: Scalars, _ i: Int) -> Bool {
        var j = i
        while j < s.count && PythonText.isSpace(s[j]) { j += 1 }
        return matchLiteral(s, j, "action:") != nil
    }

    /// The end of the first `literal` (case-insensitive) not preceded by a word character.
    static func find(_ s: Scalars, _ literal: String) -> Int? {
        var i = 0
        while i < s.count {
            if i == 0 || !PythonText.isWordCharacter(s[i - 1]), let end = matchLiteral(s, i, literal) { return end }
            i += 1
        }
        return nil
    }

    /// Case-insensitive match of an ASCII lower-case literal at `i`, as Python's `re.IGNORECASE`.
    static func matchLiteral(_ s: Scalars, _ i: Int, _ literal: String) -> Int? {
        var j = i
        for p in literal.unicodeScalars {
            guard j < s.count, sameIgnoringCase(s[j], p) else { return nil }
            j += 1
        }
        return j
    }

    static func sameIgnoringCase(_ c: Unicode.Scalar, _ p: Unicode.Scalar) -> Bool {
        if c == p { return true }
        if c.isASCII { return c.value >= 65 && c.value <= 90 && c.value + 32 == p.value }
        switch (p, c.value) {
        case ("i", 0x131), ("i", 0x130), ("s", 0x17F), ("k", 0x212A): return true
        default: return false
        }
    }
}
