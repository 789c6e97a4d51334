/// The splitting rules byte-level BPE tokenizers apply before BPE, written out by hand from their
/// regular expressions (Swift has no Oniguruma, and these run for every prompt). Each follows
/// its pattern's alternatives in order, with the same greedy and look-ahead behaviour:
///
/// - `gpt2`: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
///   (ByteLevel's own, GPT-2 and most BPE models)
/// - `llama3(maxDigits: 3)`: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
///   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` (Llama 3); `maxDigits: 1` is Qwen2's.
public enum PreTokenizer: Sendable, Equatable {
    case gpt2
    case llama3(maxDigits: Int)
    /// No splitting (ByteLevel with use_regex false and no Split before it).
    case none

    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// The rule for a Split pattern of a tokenizer.json, if it is one of the known ones.
    public static func forPattern(_ pattern: String) -> PreTokenizer? {
        switch pattern {
        case llama3Pattern: return .llama3(maxDigits: 3)
        case qwen2Pattern: return .llama3(maxDigits: 1)
        case gpt2Pattern: return .gpt2
        default: return nil
        }
    }

    /// The pieces of `text`, in order; together they are the whole text.
    public func split(_ text: String) -> [String] {
        if case .none = self { return text.isEmpty ? [] : [text] }
        let scalars = Array(text.unicodeScalars)
        var out: [String] = []
        var p = 0
        while p < scalars.count {
            let n = matchLength(scalars, at: p)
            out.append(String(String.UnicodeScalarView(scalars[p..<(p + n)])))
            p += n
        }
        return out
    }

    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
    static func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
    static func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
    /// `[^\s\p{L}\p{N}]`
    static func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !isLetter(c) && !isNumber(c) }

    /// The length (in scalars, at least 1) of the match at `p`.
    func matchLength(_ s: [Unicode.Scalar], at p: Int) -> Int {
        let n = s.count
        func run(from start: Int, _ pred: (Unicode.Scalar) -> Bool, max limit: Int = .max) -> Int {
            var e = start
            while e < n && e - start < limit && pred(s[e]) { e += 1 }
            return e - start
        }
        func contraction(caseInsensitive: Bool) -> Int {
            guard s[p] == "'", p + 1 < n else { return 0 }
            func lower(_ c: Unicode.Scalar) -> Unicode.Scalar {
                caseInsensitive && c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c
            }
            let a = lower(s[p + 1])
            if a == "s" || a == "t" || a == "m" || a == "d" { return 2 }
            if p + 2 < n {
                let b = lower(s[p + 2])
                if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return 3 }
            }
            return 0
        }
        /// `\s+(?!\S)` then `\s+`.
        func whitespace() -> Int {
            let w = run(from: p, PreTokenizer.isSpace)
            guard w > 0 else { return 0 }
            if p + w == n || w == 1 { return w }  // at the end; or one space before a non-space (`\s+`)
            return w - 1                          // leave the last space to join what follows
        }
        switch self {
        case .none:
            return n - p
        case .gpt2:
            let c = contraction(caseInsensitive: false)
            if c > 0 { return c }
            let space = s[p] == " " ? 1 : 0
            for pred in [PreTokenizer.isLetter, PreTokenizer.isNumber, PreTokenizer.isOther] {
                if p + space < n && pred(s[p + space]) { return space + run(from: p + space, pred) }
                if space == 1 && pred(s[p]) { return run(from: p, pred) }
            }
            return max(1, whitespace())
        case .llama3(let maxDigits):
            let c = contraction(caseInsensitive: true)
            if c > 0 { return c }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !PreTokenizer.isNewline(s[p]) && !PreTokenizer.isLetter(s[p]) && !PreTokenizer.isNumber(s[p]),
               p + 1 < n, PreTokenizer.isLetter(s[p + 1]) {
                return 1 + run(from: p + 1, PreTokenizer.isLetter)
            }
            if PreTokenizer.isLetter(s[p]) { return run(from: p, PreTokenizer.isLetter) }
            // \p{N}{1,maxDigits}
            if PreTokenizer.isNumber(s[p]) { return run(from: p, PreTokenizer.isNumber, max: maxDigits) }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let space = s[p] == " " && p + 1 < n && PreTokenizer.isOther(s[p + 1]) ? 1 : 0
            if PreTokenizer.isOther(s[p + space]) {
                let o = run(from: p + space, PreTokenizer.isOther)
                return space + o + run(from: p + space + o, PreTokenizer.isNewline)
            }
            // \s*[\r\n]+ : the longest whitespace prefix that ends in a newline.
            let w = run(from: p, PreTokenizer.isSpace)
            var e = p + w
            while e > p && !PreTokenizer.isNewline(s[e - 1]) { e -= 1 }
            if e > p { return e - p }
            return max(1, whitespace())
        }
    }
}
