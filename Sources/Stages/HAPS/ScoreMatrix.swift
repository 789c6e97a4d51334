public import Pipeline

/// A score table (`scores.jsonl` of a `score-table` artifact) as a question × action matrix:
/// what routers learn from and what an evaluation replays. Only questions that have every
/// action are kept (as the score summary's means do), in table order.
///
///     let m = try ScoreMatrix(directory: scoreTableDir)
///     m.f1[q][a]; m.bestFixedAction; m.oracleF1
public struct ScoreMatrix: Sendable {
    public var space: ActionSpace
    /// Question texts (as sampled), one per row of the matrices.
    public var questions: [String]
    public var f1: [[Double]], em: [[Double]], precision: [[Double]], recall: [[Double]]
    /// Tokens and cost of each question × action, when the samples recorded them.
    public var tokens: [[Double?]], cost: [[Double?]]
    /// Each candidate's name (from the table's `summary.json`), for reports; nil when unnamed.
    public var candidateNames: [String]?

    public init(space: ActionSpace, questions: [String], f1: [[Double]], em: [[Double]]? = nil, precision: [[Double]]? = nil,
                recall: [[Double]]? = nil, tokens: [[Double?]]? = nil, cost: [[Double?]]? = nil) {
        let none = questions.map { _ in [Double?](repeating: nil, count: space.count) }
        self.space = space; self.questions = questions; self.f1 = f1
        self.em = em ?? f1.map { $0.map { $0 == 1 ? 1 : 0 } }
        self.precision = precision ?? f1; self.recall = recall ?? f1
        self.tokens = tokens ?? none; self.cost = cost ?? none
    }

    /// Reads `scores.jsonl` of a score-table artifact directory. The roles are the row fields
    /// that hold a candidate id (`teacher`, `student` in the reference's case).
    public init(directory: String) throws {
        let path = directory + "/scores.jsonl"
        let rows = try JSONLines.read(path)
        guard let first = rows.first?.value else { throw DataError(file: path, line: nil, "no rows (the file is empty)") }
        let known: Set<String> = ["question_index", "question", "id", "action", "f1", "em", "precision", "recall", "tokens", "cost"]
        let roles = (first.objectMembers ?? []).map(\.key).filter { !known.contains($0) && first[$0]?.intValue != nil }
        let ordered = ActionSpace.referenceRoles.filter(roles.contains) + roles.filter { !ActionSpace.referenceRoles.contains($0) }.sorted()
        guard !ordered.isEmpty else { throw DataError(file: path, line: rows.first?.line, "no role fields (teacher, student, ...) in the row") }
        var candidates = 1
        for (_, v) in rows { for r in ordered { candidates = max(candidates, (v[r]?.intValue ?? 0) + 1) } }
        let space = ActionSpace(candidates: candidates, roles: ordered)
        // Rows are one question by their id where they have one (as `score` grouped them: two
        // prompts with the same text and different ids are two questions), else by their text.
        var index: [String: Int] = [:], questions: [String] = []
        var cells: [[JSONValue?]] = []
        for (line, v) in rows {
            guard let q = v["question"]?.stringValue, let a = v["action"]?.intValue, space.indices.contains(a) else {
                throw DataError(file: path, line: line, "a score row needs 'question' and an 'action' in 0..<\(space.count)")
            }
            for metric in Self.boundedMetrics {
                guard let m = v[metric] else { continue }
                guard let x = m.doubleValue, (0...1).contains(x) else {
                    throw DataError(file: path, line: line, "'\(metric)' is \(m.canonical), outside [0, 1] (F1, EM, precision and recall are bounded)")
                }
            }
            let qi: Int
            let key = v["id"]?.stringValue.map { "#" + $0 } ?? "q" + q
            if let i = index[key] { qi = i } else { qi = questions.count; index[key] = qi; questions.append(q); cells.append(Array(repeating: nil, count: space.count)) }
            cells[qi][a] = v
        }
        let complete = cells.indices.filter { q in cells[q].allSatisfy { $0 != nil } }
        func column(_ key: String) -> [[Double]] { complete.map { q in cells[q].map { $0![key]?.doubleValue ?? 0 } } }
        self.init(space: space, questions: complete.map { questions[$0] }, f1: column("f1"), em: column("em"),
                  precision: column("precision"), recall: column("recall"),
                  tokens: complete.map { q in cells[q].map { $0!["tokens"]?.doubleValue } },
                  cost: complete.map { q in cells[q].map { $0!["cost"]?.doubleValue } })
        let summary = try? JSONParser.parse(FileIO.readString(directory + "/summary.json"))
        candidateNames = summary?["candidates"]?.arrayValue?.compactMap(\.stringValue)
        if candidateNames?.count != candidates { candidateNames = nil }
    }

    public var count: Int { questions.count }

    /// The metrics a score row holds that lie in [0, 1]: a value outside is refused where it is
    /// read (a table with F1 = 1e300 would skew every mean and router silently).
    public static let boundedMetrics = ["f1", "em", "precision", "recall"]

    /// Row of each question text (as sampled, spaces trimmed).
    public var rowByQuestion: [String: Int] {
        var out: [String: Int] = [:]
        for (i, q) in questions.enumerated() where out[q.trimmingSpaces] == nil { out[q.trimmingSpaces] = i }
        return out
    }

    /// Mean F1 of each action over every question.
    public var meanF1: [Double] {
        space.indices.map { a in f1.reduce(0) { $0 + $1[a] } / Double(max(1, count)) }
    }

    /// The action with the best mean F1 (ties: the lowest index), as the reference picks it.
    public var bestFixedAction: Int {
        let m = meanF1
        var best = 0
        for a in m.indices where m[a] > m[best] { best = a }
        return best
    }

    /// Each question's best action (ties: the lowest index).
    public var oracleActions: [Int] {
        f1.map { row in
            var best = 0
            for a in row.indices where row[a] > row[best] { best = a }
            return best
        }
    }
}
