public import Pipeline

/// The score table: question × action → F1, EM, precision, recall (and tokens when the
/// samples record them), with the summary figures routing research reads first.
///
///     let table = try ScoreTable(rows: rows, space: ActionSpace())
///     table.summary.oracleF1 - table.summary.bestFixedF1     // the oracle gap
public struct ScoreTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public var questionIndex: Int
        public var action: Int
        public var metrics: AnswerMetrics
        public var tokens: Int?
        /// USD, when the samples carry a cost (models with a price in the spec).
        public var cost: Double?
    }

    public struct ActionSummary: Sendable, Equatable {
        public var action: Int
        public var count: Int
        public var f1Sum: Double
        public var emSum: Int
        public var precisionSum: Double
        public var recallSum: Double
        public var tokensSum = 0
        public var costSum = 0.0
        public var costCount = 0
        public var meanCost: Double? { costCount == 0 ? nil : costSum / Double(costCount) }
        public var meanF1: Double { count == 0 ? 0 : f1Sum / Double(count) }
        public var meanEM: Double { count == 0 ? 0 : Double(emSum) / Double(count) }
        public var meanPrecision: Double { count == 0 ? 0 : precisionSum / Double(count) }
        public var meanRecall: Double { count == 0 ? 0 : recallSum / Double(count) }
    }

    public struct Summary: Sendable, Equatable {
        public var questions: Int
        /// Questions that have a score for every action; the comparisons below use only these.
        public var completeQuestions: Int
        public var rows: Int
        public var perAction: [ActionSummary]
        public var bestFixedAction: Int?
        public var bestFixedF1: Double
        public var oracleF1: Double
        public var randomF1: Double
        public var questionsWhereActionsDiffer: Int
        public var recordedF1Disagreements: Int
        public var notRecomputed: Int
        public var duplicateRows: Int
        public var skippedRows: [String: Int]
        /// Per role (in `space.roles` order): complete questions where changing only that
        /// role's candidate changes the F1, for some choice of the other roles.
        public var questionsWhereRoleMatters: [Int] = []
    }

    /// The comparison restricted to one question type (from the questions file).
    public struct TypeSummary: Sendable, Equatable {
        public var type: String
        public var questions: Int
        public var meanF1: [Double]          // per action
        public var bestFixedAction: Int
        public var oracleF1: Double
        public var bestFixedF1: Double { meanF1[bestFixedAction] }
    }

    public var space: ActionSpace
    public var usedRecorded = false
    public var questions: [String]
    /// Each question's id, where its rows gave one (`BaselineRow.id`).
    public var questionIDs: [String?] = []
    public var entries: [Entry]
    public var summary: Summary
    /// Filled by `breakDown(byType:)`.
    public var byType: [TypeSummary] = []
    /// Each candidate's name, as the samples' role fields record it (`teacher`: "agent_a"), when
    /// the rows name every candidate one way; nil otherwise (the reports then use the indices).
    public var candidateNames: [String]?

    /// Builds the table. Metrics are recomputed from `answer` and `ground_truth` when the row has
    /// both (a recorded `f1` that disagrees is counted, and the recomputed value is used), unless
    /// `useRecorded`, which keeps the recorded metrics (still counting disagreements).
    public init(rows: [BaselineRow], space: ActionSpace, skipped: [String: Int] = [:], useRecorded: Bool = false) throws {
        self.space = space
        usedRecorded = useRecorded
        // A question is its id where the row has one, else its text.
        var questionIndex: [[UInt8]: Int] = [:]
        var questions: [String] = [], ids: [String?] = []
        var seen = Set<[Int]>()
        var entries: [Entry] = []
        var disagreements = 0, notRecomputed = 0, duplicates = 0
        for r in rows {
            let key = r.id.map { [1] + Array($0.utf8) } ?? [0] + Array(r.question.utf8)
            let qi: Int
            if let i = questionIndex[key] { qi = i } else { qi = questions.count; questionIndex[key] = qi; questions.append(r.question); ids.append(r.id) }
            guard seen.insert([qi, r.action]).inserted else { duplicates += 1; continue }
            let recorded = AnswerMetrics(f1: r.f1, precision: r.recorded["precision"]?.doubleValue ?? 0,
                                         recall: r.recorded["recall"]?.doubleValue ?? 0, em: r.recorded["em"]?.intValue ?? 0)
            var metrics = recorded
            if let a = r.answer, let t = r.groundTruth {
                let recomputed = AnswerMetrics(prediction: a, groundTruth: t)
                if abs(recomputed.f1 - r.f1) > 1e-9 { disagreements += 1 }
                if !useRecorded { metrics = recomputed }
            } else {
                notRecomputed += 1
            }
            entries.append(Entry(questionIndex: qi, action: r.action, metrics: metrics, tokens: ScoreTable.tokens(r.recorded),
                                 cost: r.recorded["cost"]?.doubleValue))
        }
        entries.sort { ($0.questionIndex, $0.action) < ($1.questionIndex, $1.action) }
        self.questions = questions
        questionIDs = ids
        candidateNames = ScoreTable.candidateNames(rows, space: space)
        self.entries = entries

        var perAction = space.indices.map { ActionSummary(action: $0, count: 0, f1Sum: 0, emSum: 0, precisionSum: 0, recallSum: 0) }
        let byQuestion = ScoreTable.f1Matrix(entries, questions: questions.count, actions: space.count)
        let complete = byQuestion.indices.filter { q in byQuestion[q].allSatisfy { $0 != nil } }
        let completeSet = Set(complete)
        for e in entries where completeSet.contains(e.questionIndex) {
            perAction[e.action].count += 1
            perAction[e.action].f1Sum += e.metrics.f1
            perAction[e.action].emSum += e.metrics.em
            perAction[e.action].precisionSum += e.metrics.precision
            perAction[e.action].recallSum += e.metrics.recall
            perAction[e.action].tokensSum += e.tokens ?? 0
            if let c = e.cost { perAction[e.action].costSum += c; perAction[e.action].costCount += 1 }
        }
        let comparison = complete.isEmpty ? nil : ScoreTable.compare(complete, byQuestion)
        let best = comparison?.bestFixedAction, oracle = comparison?.oracleF1 ?? 0
        let n = Double(max(1, complete.count))
        let random = complete.reduce(0.0) { acc, q in acc + byQuestion[q].reduce(0.0) { $0 + $1! } / Double(space.count) } / n
        let differ = complete.filter { q in Set(byQuestion[q].map { $0! }).count > 1 }.count
        // A role matters on a question when two actions that differ only in that role's
        // candidate score differently.
        let roleMatters = space.roles.indices.map { r in
            complete.filter { q in
                var byRest: [[Int]: Double] = [:]
                for a in space.indices {
                    var rest = space.assignment(of: a)
                    rest.remove(at: r)
                    if let other = byRest[rest], other != byQuestion[q][a]! { return true }
                    byRest[rest] = byQuestion[q][a]!
                }
                return false
            }.count
        }
        summary = Summary(questions: questions.count, completeQuestions: complete.count, rows: entries.count, perAction: perAction,
                          bestFixedAction: best, bestFixedF1: best.map { perAction[$0].meanF1 } ?? 0, oracleF1: oracle,
                          randomF1: complete.isEmpty ? 0 : random, questionsWhereActionsDiffer: differ,
                          recordedF1Disagreements: disagreements, notRecomputed: notRecomputed, duplicateRows: duplicates,
                          skippedRows: skipped, questionsWhereRoleMatters: roleMatters)
    }

    /// Per question type (`types`: question text → type; questions without one are left
    /// out): mean F1 per action, best fixed action and oracle, over complete questions.
    public mutating func breakDown(byType types: [String: String]) {
        let f1 = ScoreTable.f1Matrix(entries, questions: questions.count, actions: space.count)
        var groups: [String: [Int]] = [:]
        for q in questions.indices where f1[q].allSatisfy({ $0 != nil }) {
            if let t = types[questions[q].trimmingSpaces] { groups[t, default: []].append(q) }
        }
        byType = groups.keys.sorted().map { t in
            let c = ScoreTable.compare(groups[t]!, f1)
            return TypeSummary(type: t, questions: groups[t]!.count, meanF1: c.meanF1, bestFixedAction: c.bestFixedAction, oracleF1: c.oracleF1)
        }
    }

    /// F1 by question and action (nil where the table has no row).
    static func f1Matrix(_ entries: [Entry], questions: Int, actions: Int) -> [[Double?]] {
        var f1 = [[Double?]](repeating: [Double?](repeating: nil, count: actions), count: questions)
        for e in entries { f1[e.questionIndex][e.action] = e.metrics.f1 }
        return f1
    }

    /// Over `questions` (non-empty, each with every action): mean F1 per action, the best fixed
    /// action (ties: the lowest) and the oracle (mean of each question's best F1).
    static func compare(_ questions: [Int], _ f1: [[Double?]]) -> (meanF1: [Double], bestFixedAction: Int, oracleF1: Double) {
        let n = Double(questions.count), actions = f1[questions[0]].indices
        let means = actions.map { a in questions.reduce(0.0) { $0 + f1[$1][a]! } / n }
        var best = 0
        for a in actions where means[a] > means[best] { best = a }
        return (means, best, questions.reduce(0.0) { $0 + f1[$1].map { $0! }.max()! } / n)
    }

    /// Token counts when the row records them: `tokens`, or `usage` with prompt and completion tokens.
    static func tokens(_ v: JSONValue) -> Int? {
        if let t = v["tokens"]?.intValue { return t }
        if let u = v["usage"], let p = u["prompt_tokens"]?.intValue, let c = u["completion_tokens"]?.intValue { return p + c }
        return nil
    }

    // MARK: Output

    /// One line per question × action, in question then action order.
    /// A score-table artifact's figures, from its `summary.json`: best fixed, oracle, the gap
    /// and random routing's F1 (the `score` and `import` stages').
    public static func figures(directory: String) -> [Figure] {
        guard let text = try? FileIO.readString(directory + "/summary.json"), let j = try? JSONParser.parse(text) else { return [] }
        return ["best_fixed_f1", "oracle_f1", "oracle_gap", "random_f1"].compactMap { k in j[k]?.doubleValue.map { Figure(k, $0) } }
    }

    public var jsonLines: String {
        entries.map { e in
            var o: [String: JSONValue] = [
                "question_index": .number(Double(e.questionIndex)), "question": .string(questions[e.questionIndex]),
                "action": .number(Double(e.action)),
                "f1": .number(e.metrics.f1), "em": .number(Double(e.metrics.em)),
                "precision": .number(e.metrics.precision), "recall": .number(e.metrics.recall),
            ]
            for (role, id) in zip(space.roles, space.assignment(of: e.action)) { o[role] = .number(Double(id)) }
            if let id = questionIDs[e.questionIndex] { o["id"] = .string(id) }
            if let t = e.tokens { o["tokens"] = .number(Double(t)) }
            if let c = e.cost { o["cost"] = .number(c) }
            return JSONValue.object(o).canonical + "\n"
        }.joined()
    }

    public var summaryJSON: JSONValue {
        let s = summary
        return .object([
            "candidates": candidateNames.map { .array($0.map { .string($0) }) } ?? .null,
            "questions": .number(Double(s.questions)), "complete_questions": .number(Double(s.completeQuestions)),
            "rows": .number(Double(s.rows)),
            "actions": .array(s.perAction.map { a in
                .object(["action": .number(Double(a.action)), "assignment": .string(describe(a.action)), "n": .number(Double(a.count)),
                         "f1_mean": .number(a.meanF1), "f1_sum": .number(a.f1Sum), "em_mean": .number(a.meanEM),
                         "precision_mean": .number(a.meanPrecision), "recall_mean": .number(a.meanRecall),
                         "tokens_sum": .number(Double(a.tokensSum)), "cost_mean": a.meanCost.map { .number($0) } ?? .null])
            }),
            "best_fixed_action": s.bestFixedAction.map { .number(Double($0)) } ?? .null,
            "best_fixed_f1": .number(s.bestFixedF1), "oracle_f1": .number(s.oracleF1), "random_f1": .number(s.randomF1),
            "oracle_gap": .number(s.oracleF1 - s.bestFixedF1),
            "questions_where_actions_differ": .number(Double(s.questionsWhereActionsDiffer)),
            "recorded_f1_disagreements": .number(Double(s.recordedF1Disagreements)),
            "rows_not_recomputed": .number(Double(s.notRecomputed)), "duplicate_rows": .number(Double(s.duplicateRows)),
            "skipped_rows": .object(s.skippedRows.mapValues { .number(Double($0)) }),
            "questions_where_role_matters": .object(Dictionary(uniqueKeysWithValues: zip(space.roles, s.questionsWhereRoleMatters.map { .number(Double($0)) }))),
            "by_type": .object(Dictionary(uniqueKeysWithValues: byType.map { t in
                (t.type, JSONValue.object(["questions": .number(Double(t.questions)), "f1_mean": .array(t.meanF1.map { .number($0) }),
                                           "best_fixed_action": .number(Double(t.bestFixedAction)), "best_fixed_f1": .number(t.bestFixedF1),
                                           "oracle_f1": .number(t.oracleF1)]))
            })),
        ])
    }

    /// "teacher agent_a, student agent_b" ("teacher 0, student 1" when the rows do not name the candidates)
    public func describe(_ action: Int) -> String { space.describe(action, names: candidateNames) }

    /// The name each candidate has in the rows' role fields: the one name every row gives it, or
    /// nil for all when a candidate is unnamed (ids in the fields) or named two ways.
    static func candidateNames(_ rows: [BaselineRow], space: ActionSpace) -> [String]? {
        var names = [String?](repeating: nil, count: space.candidates)
        for r in rows {
            for (role, candidate) in zip(space.roles, space.assignment(of: r.action)) {
                guard let name = r.recorded[role]?.stringValue, Int(name) == nil else { return nil }
                if let known = names[candidate], known != name { return nil }
                names[candidate] = name
            }
        }
        let named = names.compactMap { $0 }
        return named.count == space.candidates ? named : nil
    }

    /// The summary as a table for terminals.
    public var summaryText: String {
        let s = summary
        func f(_ x: Double) -> String { Format.fixed(x, 4) }
        var lines = ["questions: \(s.questions) (\(s.completeQuestions) with every action; means below are over those), rows: \(s.rows)"]
        let width = max(10, space.indices.map { describe($0).count }.max() ?? 10)
        lines.append("action  " + "assignment".padding(width) + "      n  F1 mean  EM mean  P mean   R mean   F1 sum")
        for a in s.perAction {
            lines.append("\(String(a.action).padding(6))  \(describe(a.action).padding(width))  \(String(a.count).leftPadding(5))  \(f(a.meanF1))   \(f(a.meanEM))   \(f(a.meanPrecision))   \(f(a.meanRecall))   \(Format.fixed(a.f1Sum, 2))")
        }
        if s.perAction.contains(where: { $0.meanCost != nil }) {
            lines.append("cost per question (USD): " + s.perAction.map { "\($0.action): \($0.meanCost.map { Format.fixed($0, 6) } ?? "-")" }.joined(separator: ", "))
        }
        if let b = s.bestFixedAction {
            lines.append("best fixed action: \(b) (\(describe(b))), mean F1 \(f(s.bestFixedF1))")
        }
        lines.append("oracle (best action per question): mean F1 \(f(s.oracleF1)) (gap over best fixed: \(f(s.oracleF1 - s.bestFixedF1)))")
        lines.append("random routing (expectation): mean F1 \(f(s.randomF1))")
        lines.append("questions where the actions differ: \(s.questionsWhereActionsDiffer) of \(s.completeQuestions)")
        for (role, n) in zip(space.roles, s.questionsWhereRoleMatters) {
            lines.append("questions where the \(role)'s candidate alone changes the F1: \(n) of \(s.completeQuestions) (\(Format.fixed(100 * Double(n) / Double(max(1, s.completeQuestions)), 1))%)")
        }
        if !byType.isEmpty {
            lines.append("by question type:")
            let width = byType.map(\.type.count).max()!
            for t in byType {
                lines.append("  \(t.type.padding(width))  \(String(t.questions).leftPadding(4)) questions  F1 per action: " + t.meanF1.map(f).joined(separator: " ")
                             + "  best fixed: \(t.bestFixedAction) (\(describe(t.bestFixedAction))) \(f(t.bestFixedF1))  oracle \(f(t.oracleF1))")
            }
        }
        if s.recordedF1Disagreements > 0 {
            lines.append("warning: the recorded f1 disagrees with the one recomputed from answer and ground_truth on \(s.recordedF1Disagreements) rows (\(usedRecorded ? "recorded values used" : "recomputed values used; --use-recorded keeps the recorded ones"))")
        }
        if s.notRecomputed > 0 && !usedRecorded {  // with use_recorded, every row's recorded metrics are used anyway
            lines.append("note: \(s.notRecomputed) rows lack answer or ground_truth; their recorded metrics are used") }
        if s.duplicateRows > 0 { lines.append("warning: \(s.duplicateRows) duplicate question × action rows ignored (the first is kept)") }
        for (why, n) in s.skippedRows.sorted(by: { $0.key < $1.key }) { lines.append("warning: skipped \(n) rows: \(why)") }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadding(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
