/// Python's notions of whitespace, word characters and lower case, for code that must split
/// and match text exactly as the reference's Python does. Positions are code points
/// (`unicodeScalars`), as in Python.
public enum PythonText {
    /// `str.isspace()` for one code point: Unicode category Zs, or bidirectional class WS, B or
    /// S — which adds U+001C...U+001F to what Swift calls whitespace, and leaves out U+180E.
    public static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `str.split()` with no arguments: runs of whitespace separate, ends are dropped.
    public static func split(_ s: String) -> [String] {
        var out: [String] = []
        var current = String.UnicodeScalarView()
        for c in s.unicodeScalars {
            if isSpace(c) {
                if !current.isEmpty { out.append(String(current)); current = String.UnicodeScalarView() }
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { out.append(String(current)) }
        return out
    }

    /// `\w` of Python's `re` on str patterns: `str.isalnum()` or `_` (letters by general
    /// category L*, and anything with a numeric value).
    public static func isWordCharacter(_ c: Unicode.Scalar) -> Bool {
        if c == "_" { return true }
        if c.isASCII {
            return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9")
        }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return true
        default:
            return c.properties.numericType != nil
        }
    }

    /// `str.lower()`: full Unicode lower-casing, including the final sigma rule
    /// (Σ at the end of a word becomes ς).
    public static func lower(_ s: String) -> String {
        let scalars = Array(s.unicodeScalars)
        var out = String.UnicodeScalarView()
        for (i, c) in scalars.enumerated() {
            if c == "\u{03A3}" {
                out.append(isFinalSigma(scalars, at: i) ? "\u{03C2}" : "\u{03C3}")
            } else if c.isASCII {
                out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c)
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }

    /// CPython's Final_Sigma test: a cased letter (skipping case-ignorable ones) before, and
    /// none after.
    private static func isFinalSigma(_ s: [Unicode.Scalar], at i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && s[j].properties.isCased else { return false }
        var k = i + 1
        while k < s.count && s[k].properties.isCaseIgnorable { k += 1 }
        return !(k < s.count && s[k].properties.isCased)
    }
}
