import JSON
#if canImport(Glibc)
import Glibc
#endif

/// A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (GPT-2, Llama 3, Qwen2,
/// and any model trained with `tokenizers`' ByteLevel pre-tokenizer), encoding exactly as
/// `tokenizers` does: added (special) tokens are cut out of the text first, the rest is split
/// by the pre-tokenizer, each piece's UTF-8 bytes become GPT-2's printable byte characters, and
/// merges apply lowest rank first (leftmost among equals).
///
///     let tok = try BPETokenizer(path: "model/tokenizer.json")
///     let ids = tok.encode("Hello world")
///     tok.decode(ids)                      // "Hello world"
public final class BPETokenizer: @unchecked Sendable {
    public let vocab: [String: Int]
    public let tokens: [Int: String]
    /// Added tokens (special or not), matched in raw text before anything else.
    public let addedTokens: [String: Int]
    public let specialIDs: Set<Int>
    public let preTokenizer: PreTokenizer
    public let ignoreMerges: Bool
    private let ranks: [Pair: Int]
    private let addPrefixSpace: Bool
    private let cache = TokenizerCache()
    private let added: AddedTokens

    struct Pair: Hashable { var a: String; var b: String }

    public convenience init(path: String) throws {
        let bytes: [UInt8]
        do { bytes = try BPETokenizer.read(path) } catch { throw TokenizerError(path: path, message: "cannot read") }
        let json: JSONValue
        do { json = try JSONParser.parse(bytes: bytes) } catch { throw TokenizerError(path: path, message: "not valid JSON: \(error)") }
        try self.init(json: json, path: path)
    }

    public init(json j: JSONValue, path: String) throws {
        guard let model = j["model"], model["type"]?.stringValue == "BPE" else {
            throw TokenizerError(path: path, message: "model.type is \(j["model"]?["type"]?.stringValue ?? "missing"); only BPE (byte-level) is supported")
        }
        if let n = j["normalizer"], n != .null {
            throw TokenizerError(path: path, message: "normalizer \(n["type"]?.stringValue ?? "?") is not supported (byte-level BPE models have none)")
        }
        var vocab: [String: Int] = [:]
        for (k, v) in model["vocab"]?.objectMembers ?? [] { if let id = v.intValue { vocab[k] = id } }
        guard !vocab.isEmpty else { throw TokenizerError(path: path, message: "model.vocab is empty") }
        var ranks: [Pair: Int] = [:]
        for (i, m) in (model["merges"]?.arrayValue ?? []).enumerated() {
            if let s = m.stringValue {  // "a b" (tokenizers < 0.20)
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw TokenizerError(path: path, message: "merge \(i) '\(s)' is not two symbols") }
                ranks[Pair(a: String(parts[0]), b: String(parts[1]))] = ranks[Pair(a: String(parts[0]), b: String(parts[1]))] ?? i
            } else if let pair = m.arrayValue?.compactMap(\.stringValue), pair.count == 2 {  // ["a", "b"]
                ranks[Pair(a: pair[0], b: pair[1])] = ranks[Pair(a: pair[0], b: pair[1])] ?? i
            } else {
                throw TokenizerError(path: path, message: "merge \(i) is neither \"a b\" nor [a, b]")
            }
        }
        var added: [String: Int] = [:], special = Set<Int>()
        for t in j["added_tokens"]?.arrayValue ?? [] {
            guard let content = t["content"]?.stringValue, let id = t["id"]?.intValue else { continue }
            added[content] = id; vocab[content] = vocab[content] ?? id
            if t["special"]?.boolValue == true { special.insert(id) }
        }
        // Pre-tokenizer: ByteLevel (with its own GPT-2 split unless use_regex is false), or a
        // Sequence of a Split with a known pattern and a ByteLevel without regex.
        func byteLevel(_ p: JSONValue) -> (split: Bool, prefix: Bool)? {
            guard p["type"]?.stringValue == "ByteLevel" else { return nil }
            return (p["use_regex"]?.boolValue ?? true, p["add_prefix_space"]?.boolValue ?? false)
        }
        let pre = j["pre_tokenizer"] ?? .null
        var rule: PreTokenizer, prefix = false
        if let b = byteLevel(pre) {
            rule = b.split ? .gpt2 : .none; prefix = b.prefix
        } else if pre["type"]?.stringValue == "Sequence", let steps = pre["pretokenizers"]?.arrayValue, steps.count == 2,
                  steps[0]["type"]?.stringValue == "Split", let b = byteLevel(steps[1]), !b.split {
            guard let pattern = steps[0]["pattern"]?["Regex"]?.stringValue, let known = PreTokenizer.forPattern(pattern) else {
                throw TokenizerError(path: path, message: "the Split pattern is not one the engine knows (GPT-2, Llama 3, Qwen2): \(steps[0]["pattern"]?.canonical ?? "none")")
            }
            guard steps[0]["behavior"]?.stringValue == "Isolated", steps[0]["invert"]?.boolValue != true else {
                throw TokenizerError(path: path, message: "only the Split behaviour 'Isolated' (not inverted) is supported")
            }
            rule = known; prefix = b.prefix
        } else {
            throw TokenizerError(path: path, message: "pre_tokenizer \(pre["type"]?.stringValue ?? "none") is not supported; byte-level BPE tokenizers use ByteLevel")
        }
        self.vocab = vocab
        var tokens: [Int: String] = [:]
        for (k, v) in vocab { tokens[v] = tokens[v] ?? k }
        self.tokens = tokens
        self.addedTokens = added; self.specialIDs = special; self.ranks = ranks
        self.added = AddedTokens(added)
        self.preTokenizer = rule; self.addPrefixSpace = prefix
        self.ignoreMerges = model["ignore_merges"]?.boolValue ?? false
    }

    static func read(_ path: String) throws -> [UInt8] { try ModelFiles.read(path) }

    public var vocabularySize: Int { (tokens.keys.max() ?? -1) + 1 }

    /// Token ids of `text`. Added tokens written in the text (`<|begin_of_text|>`) become their
    /// ids, as in `tokenizers`; nothing else is added (no BOS: chat templates write it).
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        for (piece, addedID) in splitAddedTokens(text) {
            if let addedID { ids.append(addedID); continue }
            var t = piece
            if addPrefixSpace && !t.hasPrefix(" ") { t = " " + t }
            for word in preTokenizer.split(t) { ids += encodeWord(word) }
        }
        return ids
    }

    /// Text of `ids` (bytes put back together; invalid UTF-8 is replaced, as `tokenizers` does).
    public func decode(_ ids: [Int], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if skipSpecial && specialIDs.contains(id) { continue }
            guard let t = tokens[id] else { continue }
            if addedTokens[t] != nil { bytes += Array(t.utf8); continue }
            for c in t.unicodeScalars {
                if let b = ByteLevel.byte(of: c) { bytes.append(b) } else { bytes += Array(String(c).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func splitAddedTokens(_ text: String) -> [(String, Int?)] { added.split(text) }

    /// BPE over one pre-tokenized piece.
    func encodeWord(_ word: String) -> [Int] {
        if let hit = cache.get(word) { return hit }
        let mapped = ByteLevel.encode(word)
        if ignoreMerges, let id = vocab[mapped] { return [id] }
        var symbols = mapped.unicodeScalars.map { String($0) }
        while symbols.count > 1 {
            var best = -1, bestRank = Int.max
            for i in 0..<(symbols.count - 1) {
                if let r = ranks[Pair(a: symbols[i], b: symbols[i + 1])], r < bestRank { best = i; bestRank = r }
            }
            if best < 0 { break }
            symbols[best] += symbols[best + 1]
            symbols.remove(at: best + 1)
        }
        let ids = symbols.compactMap { vocab[$0] }
        cache.put(word, ids)
        return ids
    }
}

public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes stand for
/// themselves, the others are shifted to U+0100 and up (so a space is "Ġ").
public enum ByteLevel {
    static let table: [Unicode.Scalar] = {
        var printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var chars = printable
        var n = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b); chars.append(256 + n); n += 1
        }
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for (b, c) in zip(printable, chars) { table[b] = Unicode.Scalar(UInt32(c))! }
        return table
    }()
    static let reverse: [UInt32: UInt8] = {
        var r: [UInt32: UInt8] = [:]
        for (b, c) in table.enumerated() { r[c.value] = UInt8(b) }
        return r
    }()

    public static func encode(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for b in s.utf8 { out.append(table[Int(b)]) }
        return String(out)
    }

    public static func byte(of c: Unicode.Scalar) -> UInt8? { reverse[c.value] }
}

/// Recently encoded words (a bounded map; pieces repeat a lot in prompts).
final class TokenizerCache: @unchecked Sendable {
    private let lock = Lock()
    private var entries: [String: [Int]] = [:]
    func get(_ w: String) -> [Int]? { lock.withLock { entries[w] } }
    func put(_ w: String, _ ids: [Int]) {
        lock.withLock {
            if entries.count > 50_000 { entries.removeAll(keepingCapacity: true) }
            entries[w] = ids
        }
    }
}

/// Tokens matched in raw text before any other processing (special tokens such as
/// `<|begin_of_text|>` or `[CLS]`), longest first at each position, as `tokenizers` does.
struct AddedTokens: Sendable {
    let ids: [String: Int]
    private let byLength: [String]
    private let firstCharacters: Set<Character>

    init(_ ids: [String: Int]) {
        self.ids = ids
        byLength = ids.keys.filter { !$0.isEmpty }.sorted { $0.count > $1.count || ($0.count == $1.count && $0 < $1) }
        firstCharacters = Set(byLength.compactMap(\.first))
    }

    /// The text cut into plain runs (nil) and added tokens (their ids).
    func split(_ text: String) -> [(String, Int?)] {
        guard !ids.isEmpty, !text.isEmpty else { return text.isEmpty ? [] : [(text, nil)] }
        var out: [(String, Int?)] = []
        var rest = Substring(text), plain = ""
        outer: while !rest.isEmpty {
            if let c = rest.first, firstCharacters.contains(c) {
                for t in byLength where rest.hasPrefix(t) {
                    if !plain.isEmpty { out.append((plain, nil)); plain = "" }
                    out.append((t, ids[t]))
                    rest = rest.dropFirst(t.count)
                    continue outer
                }
            }
            plain.append(rest.removeFirst())
        }
        if !plain.isEmpty { out.append((plain, nil)) }
        return out
    }
}

/// Whole-file reads of a model directory's small files (configs, tokenizers), for NN and LLM,
/// which import no Foundation.
package enum ModelFiles {
    package struct Unreadable: Error, CustomStringConvertible {
        package var path: String
        package var description: String { "\(path): cannot open" }
    }

    package static func read(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else { throw Unreadable(path: path) }
        defer { fclose(f) }
        var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 1 << 16)
        while true { let n = fread(&buf, 1, buf.count, f); if n <= 0 { break }; out += buf[0..<n] }
        return out
    }
}
