@_spi(_Unicode) import Swift
import JSON

/// BERT's tokenizer, as `tokenizers` runs it from a `tokenizer.json` (or a `vocab.txt`):
/// BertNormalizer (clean control characters, spaces around CJK ideographs, strip accents by
/// NFD, lower-case), BertPreTokenizer (split on whitespace and punctuation), WordPiece
/// (greedy longest match, `##` continuations, `[UNK]` for words it cannot cover), and
/// `[CLS] … [SEP]` around the result, truncated to a maximum length.
///
///     let tok = try WordPieceTokenizer(directory: "models/all-MiniLM-L6-v2")
///     tok.encode("Hello, world!", maxLength: 256)    // [101, 7592, 1010, 2088, 999, 102]
public final class WordPieceTokenizer: @unchecked Sendable {
    public let vocab: [String: Int]
    public let lowercase: Bool
    public let stripAccents: Bool
    public let chineseCharacters: Bool
    public let cleanText: Bool
    public let unknown: Int, classification: Int, separator: Int, padding: Int
    public let continuingPrefix: String
    public let maxCharactersPerWord: Int
    let added: AddedTokens

    /// From `tokenizer.json` when the directory has one, else `vocab.txt` with BERT's defaults
    /// (lower-casing as `tokenizer_config.json`'s `do_lower_case` says, true if absent).
    public convenience init(directory: String) throws {
        let json = directory + "/tokenizer.json"
        if let bytes = try? BPETokenizer.read(json) {
            let v: JSONValue
            do { v = try JSONParser.parse(bytes: bytes) } catch { throw TokenizerError(path: json, message: "not valid JSON: \(error)") }
            try self.init(json: v, path: json)
        } else {
            let path = directory + "/vocab.txt"
            guard let bytes = try? BPETokenizer.read(path) else {
                throw TokenizerError(path: directory, message: "neither tokenizer.json nor vocab.txt is there")
            }
            var vocab: [String: Int] = [:]
            for (i, line) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let token = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
                if !token.isEmpty && vocab[token] == nil { vocab[token] = i }
            }
            var lower = true
            if let c = try? BPETokenizer.read(directory + "/tokenizer_config.json"), let j = try? JSONParser.parse(bytes: c),
               let l = j["do_lower_case"]?.boolValue { lower = l }
            try self.init(vocab: vocab, lowercase: lower, stripAccents: lower, chineseCharacters: true, cleanText: true, path: path)
        }
    }

    public convenience init(json j: JSONValue, path: String) throws {
        guard j["model"]?["type"]?.stringValue == "WordPiece" else {
            throw TokenizerError(path: path, message: "model.type is \(j["model"]?["type"]?.stringValue ?? "missing"); expected WordPiece")
        }
        var vocab: [String: Int] = [:]
        for (k, v) in j["model"]?["vocab"]?.objectMembers ?? [] { if let id = v.intValue { vocab[k] = id } }
        let n = j["normalizer"]
        guard n == nil || n == .null || n?["type"]?.stringValue == "BertNormalizer" else {
            throw TokenizerError(path: path, message: "normalizer \(n?["type"]?.stringValue ?? "?") is not supported (BertNormalizer is)")
        }
        let lower = n?["lowercase"]?.boolValue ?? true
        let strip = n?["strip_accents"]?.boolValue ?? lower  // null: follow lowercase, as BERT does
        var added: [String: Int] = [:]
        for t in j["added_tokens"]?.arrayValue ?? [] {
            if let content = t["content"]?.stringValue, let id = t["id"]?.intValue { added[content] = id }
        }
        try self.init(vocab: vocab, lowercase: lower, stripAccents: strip, chineseCharacters: n?["handle_chinese_chars"]?.boolValue ?? true,
                      cleanText: n?["clean_text"]?.boolValue ?? true, path: path, addedTokens: added,
                      unknownToken: j["model"]?["unk_token"]?.stringValue ?? "[UNK]",
                      prefix: j["model"]?["continuing_subword_prefix"]?.stringValue ?? "##",
                      maxCharacters: j["model"]?["max_input_chars_per_word"]?.intValue ?? 100)
    }

    /// `addedTokens`: matched in raw text first (default: BERT's five special tokens).
    public init(vocab: [String: Int], lowercase: Bool, stripAccents: Bool, chineseCharacters: Bool, cleanText: Bool, path: String,
                addedTokens: [String: Int]? = nil, unknownToken: String = "[UNK]", prefix: String = "##", maxCharacters: Int = 100) throws {
        func id(_ t: String) throws -> Int {
            guard let i = vocab[t] else { throw TokenizerError(path: path, message: "the vocabulary has no \(t)") }
            return i
        }
        self.vocab = vocab; self.lowercase = lowercase; self.stripAccents = stripAccents
        self.chineseCharacters = chineseCharacters; self.cleanText = cleanText
        unknown = try id(unknownToken); classification = try id("[CLS]"); separator = try id("[SEP]"); padding = vocab["[PAD]"] ?? 0
        continuingPrefix = prefix; maxCharactersPerWord = maxCharacters
        added = AddedTokens(addedTokens ?? Dictionary(uniqueKeysWithValues: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { t in vocab[t].map { (t, $0) } }))
    }

    /// `[CLS] wordpieces [SEP]`, the word pieces cut so that the whole is at most `maxLength`.
    public func encode(_ text: String, maxLength: Int = 512) -> [Int] {
        var ids: [Int] = []
        outer: for (piece, addedID) in added.split(text) {
            if let addedID { ids.append(addedID); continue }
            for word in words(normalize(piece)) {
                ids += wordPieces(word)
                if ids.count >= maxLength - 2 { break outer }
            }
        }
        if ids.count > maxLength - 2 { ids.removeLast(ids.count - (maxLength - 2)) }
        return [classification] + ids + [separator]
    }

    static func isControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool { c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace }
    static func isChinese(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v) ||
            (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B920...0x2CEAF).contains(v) ||
            (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// BertNormalizer, in its order: clean text, CJK spacing, accents, lower case.
    func normalize(_ text: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for c in text.unicodeScalars {
            if cleanText {
                if c.value == 0 || c.value == 0xFFFD || WordPieceTokenizer.isControl(c) { continue }
                if WordPieceTokenizer.isWhitespace(c) { out.append(" "); continue }
            }
            if chineseCharacters && WordPieceTokenizer.isChinese(c.value) { out += [" ", c, " "]; continue }
            out.append(c)
        }
        if stripAccents {
            let decomposed = String(String.UnicodeScalarView(out))._nfd
            out = decomposed.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if lowercase { out = out.flatMap { Array($0.properties.lowercaseMapping.unicodeScalars) } }
        return out
    }

    /// BertPreTokenizer: whitespace separates (and is dropped); each punctuation mark is a word.
    func words(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = [], current: [Unicode.Scalar] = []
        for c in s {
            if c.properties.isWhitespace {
                if !current.isEmpty { out.append(current); current = [] }
            } else if WordPieceTokenizer.isPunctuation(c) {
                if !current.isEmpty { out.append(current); current = [] }
                out.append([c])
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// Greedy longest-match-first; a word with a piece that matches nothing is one `[UNK]`.
    func wordPieces(_ word: [Unicode.Scalar]) -> [Int] {
        if word.count > maxCharactersPerWord { return [unknown] }
        var ids: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count, found: Int?
            while start < end {
                let piece = (start > 0 ? continuingPrefix : "") + String(String.UnicodeScalarView(word[start..<end]))
                if let id = vocab[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unknown] }
            ids.append(id)
            start = end
        }
        return ids
    }
}
