/// Model calls are recorded facts (DESIGN.md §3): a reply, keyed by everything that determines
/// it (model identity, generation settings with the seed, the messages, a LoRA digest if any),
/// is stored once and replayed by every later run, resumed run, sweep point or stage that asks
/// the same thing. Entries live in `memo/ab/<key>.json`, written atomically; `gc` keeps them.
extension Store {
    func memoPath(_ key: Digest) -> String { "\(root)/memo/\(key.hex.prefix(2))/\(key.hex).json" }

    /// The recorded value for `key`, if any (a damaged entry reads as absent and is rewritten).
    public func memo(_ key: Digest) -> JSONValue? {
        guard let bytes = try? FileIO.read(memoPath(key)), let v = try? JSONParser.parse(bytes: bytes) else { return nil }
        return v
    }

    public func recordMemo(_ key: Digest, _ value: JSONValue) throws {
        try FileIO.writeAtomically(value.canonical, to: memoPath(key), sync: false)
    }
}
