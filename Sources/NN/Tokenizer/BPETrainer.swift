import JSON

/// Trains a byte-level BPE tokenizer on a corpus (the small models the embedded default
/// trains need one of their own) and writes it as a `tokenizer.json` that `BPETokenizer` and
/// Hugging Face `tokenizers` both read: special tokens first, then the 256 byte symbols, then one
/// token per merge. Merges pick the most frequent adjacent pair (ties: the smaller pair), so the
/// result is deterministic.
public enum BPETrainer {
    public static func train(_ corpus: [String], vocabularySize: Int, specialTokens: [String]) -> JSONValue {
        var vocab: [String] = specialTokens
        let alphabet = (0..<256).map { String(ByteLevel.table[$0]) }.sorted()
        vocab += alphabet
        // Words (GPT-2 split, byte-level symbols) with their frequencies.
        var counts: [String: Int] = [:]
        for text in corpus { for w in PreTokenizer.gpt2.split(text) { counts[ByteLevel.encode(w), default: 0] += 1 } }
        var words: [(symbols: [String], count: Int)] = counts.sorted { $0.key < $1.key }.map { (Array($0.key.unicodeScalars.map { String($0) }), $0.value) }
        var merges: [(String, String)] = []
        struct Pair: Hashable, Comparable {
            var a: String, b: String
            static func < (l: Pair, r: Pair) -> Bool { (l.a, l.b) < (r.a, r.b) }
        }
        while vocab.count < vocabularySize {
            var pairs: [Pair: Int] = [:]
            for w in words where w.symbols.count > 1 {
                for i in 0..<(w.symbols.count - 1) { pairs[Pair(a: w.symbols[i], b: w.symbols[i + 1]), default: 0] += w.count }
            }
            guard let best = pairs.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }), best.value >= 2 else { break }
            let p = best.key, merged = p.a + p.b
            merges.append((p.a, p.b))
            vocab.append(merged)
            for i in words.indices where words[i].symbols.count > 1 {
                var s = words[i].symbols, j = 0
                while j < s.count - 1 {
                    if s[j] == p.a && s[j + 1] == p.b { s[j] = merged; s.remove(at: j + 1) } else { j += 1 }
                }
                words[i].symbols = s
            }
        }
        let byteLevel: JSONValue = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        return .object([
            ("version", "1.0"), ("truncation", .null), ("padding", .null),
            ("added_tokens", .array(specialTokens.enumerated().map { i, t in
                ["id": .number(Double(i)), "content": .string(t), "single_word": false, "lstrip": false, "rstrip": false,
                 "normalized": false, "special": true]
            })),
            ("normalizer", .null), ("pre_tokenizer", byteLevel), ("post_processor", .null), ("decoder", byteLevel),
            ("model", .object([
                ("type", "BPE"), ("dropout", .null), ("unk_token", .null), ("continuing_subword_prefix", .null),
                ("end_of_word_suffix", .null), ("fuse_unk", false), ("byte_fallback", false), ("ignore_merges", false),
                ("vocab", .object(vocab.enumerated().map { ($0.element, .number(Double($0.offset))) })),
                ("merges", .array(merges.map { [.string($0.0), .string($0.1)] })),
            ])),
        ])
    }
}
