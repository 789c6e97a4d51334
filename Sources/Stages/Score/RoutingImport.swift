public import Pipeline

/// Routing data from elsewhere (a RouterBench-style table: prompts × models, a score and a
/// cost per cell) read into the rows a score table is built from: one role, `model`, and an
/// action per model. Two layouts:
///
/// - `long`: a row per prompt × model (CSV with a header, or JSON Lines of objects), with
///   columns prompt (or id), model, score, and optionally cost and type;
/// - `routerbench`: RouterBench's wide table, a row per prompt: a score column named by each
///   model and a `<model>|total_cost` column beside it; `eval_name` is the prompt's type.
///
/// Every bad row is reported with `file:line` and its column, all of them at once (up to 20).
public struct RoutingImport: Sendable {
    public enum Layout: String, ParameterEnum, Sendable { case long, routerbench }

    public var layout: Layout = .long
    /// Column names; nil: the layout's default (`defaults`).
    public var prompt: String?, id: String?, model: String?, score: String?, cost: String?, type: String?

    public init() {}

    /// The default column names of a layout.
    public static func defaults(_ layout: Layout) -> (prompt: String, id: String, model: String, score: String, cost: String, type: String) {
        switch layout {
        case .long: return ("prompt", "id", "model", "score", "cost", "type")
        case .routerbench: return ("prompt", "sample_id", "", "", "total_cost", "eval_name")
        }
    }

    /// What an import reads: the rows (action = the model's index), the models in order, and
    /// the questions (id, text, type) in order of first appearance.
    public struct Result: Sendable {
        public var rows: [BaselineRow]
        public var models: [String]
        public var questions: [(id: String, text: String, type: String?)]
    }

    /// A table as records of named fields, from CSV (a header line) or JSON Lines (objects).
    struct Table {
        var columns: [String]
        var records: [(line: Int, values: [String: String])]
    }

    static func table(_ path: String) throws -> Table {
        let text = try JSONLines.text(path)
        let firstChar = text.utf8.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 && $0 != 0xEF && $0 != 0xBB && $0 != 0xBF }
        if firstChar == UInt8(ascii: "{") {
            var columns: [String] = []
            var records: [(Int, [String: String])] = []
            for (line, v) in try JSONLines.parse(text, file: path) {
                guard let members = v.objectMembers else { throw DataError(file: path, line: line, "expected a JSON object, found \(v.typeDescription)") }
                var values: [String: String] = [:]
                for (k, x) in members {
                    if !columns.contains(k) { columns.append(k) }
                    values[k] = x.stringValue ?? (x == .null ? "" : x.canonical)
                }
                records.append((line, values))
            }
            return Table(columns: columns, records: records)
        }
        let all = try CSVReader.records(text, file: path)
        guard let header = all.first else { throw DataError(file: path, line: nil, "no rows (the file is empty)") }
        var records: [(Int, [String: String])] = []
        for r in all.dropFirst() {
            guard r.fields.count == header.fields.count else {
                throw DataError(file: path, line: r.line, "\(r.fields.count) fields, where the header (line \(header.line)) has \(header.fields.count)")
            }
            records.append((r.line, Dictionary(zip(header.fields, r.fields)) { a, _ in a }))
        }
        return Table(columns: header.fields, records: records)
    }

    /// Reads `path` into score-table rows.
    public func read(_ path: String) throws -> Result {
        let table = try RoutingImport.table(path)
        let d = RoutingImport.defaults(layout)
        var problems: [String] = []
        func problem(_ line: Int, _ column: String, _ what: String) { problems.append("\(path):\(line): column '\(column)': \(what)") }
        func require(_ column: String, flag: String) throws {
            guard table.columns.contains(column) else {
                throw DataError(file: path, line: 1, "no column '\(column)' (the columns: \(table.columns.joined(separator: ", "))); \(flag) names another"
                                + NearestName.hint(column, among: table.columns))
            }
        }
        let promptColumn = prompt ?? d.prompt, typeColumn = type ?? d.type
        let idColumn = id ?? d.id, hasID = table.columns.contains(idColumn)
        if id != nil { try require(idColumn, flag: "--id-column") }
        try require(promptColumn, flag: "--prompt-column")
        let hasType = table.columns.contains(typeColumn)
        if type != nil { try require(typeColumn, flag: "--type-column") }

        // (model, score column, cost column) per model.
        var cells: [(model: String, score: String, cost: String?)] = []
        var modelColumn: String?
        switch layout {
        case .long:
            let m = model ?? d.model, s = score ?? d.score, c = cost ?? d.cost
            try require(m, flag: "--model-column"); try require(s, flag: "--score-column")
            if cost != nil { try require(c, flag: "--cost-column") }
            modelColumn = m
            cells = [("", s, table.columns.contains(c) ? c : nil)]
        case .routerbench:
            let suffix = "|" + (cost ?? d.cost)
            let models = table.columns.filter { table.columns.contains($0 + suffix) }
            guard !models.isEmpty else {
                throw DataError(file: path, line: 1, "no model columns: RouterBench's layout has, per model, a score column MODEL and a cost column MODEL\(suffix) (the columns: \(table.columns.joined(separator: ", ")))")
            }
            cells = models.map { ($0, $0, $0 + suffix) }
        }

        var models: [String] = [], rows: [BaselineRow] = [], questions: [(id: String, text: String, type: String?)] = []
        var questionOf: [String: Int] = [:], seen: [String: Int] = [:]
        for (line, values) in table.records {
            let text = values[promptColumn] ?? ""
            let givenID = hasID ? values[idColumn].flatMap { $0.isEmpty ? nil : $0 } : nil
            if text.trimmingSpaces.isEmpty { problem(line, promptColumn, "empty prompt"); continue }
            let key = givenID.map { "#" + $0 } ?? "q" + text
            let type = hasType ? values[typeColumn].flatMap { $0.isEmpty ? nil : $0 } : nil
            if questionOf[key] == nil {
                questionOf[key] = questions.count
                questions.append((givenID ?? "q\(questions.count)", text, type))
            }
            for cell in cells {
                let name = modelColumn.map { values[$0] ?? "" } ?? cell.model
                if name.isEmpty { problem(line, modelColumn ?? "", "empty model name"); continue }
                guard let raw = values[cell.score], let score = Double(raw.trimmingSpaces), score.isFinite else {
                    problem(line, cell.score, "'\(values[cell.score] ?? "")' is not a number"); continue
                }
                guard (0...1).contains(score) else { problem(line, cell.score, "\(raw) is outside [0, 1] (a score is read as F1)"); continue }
                var costValue: Double?
                if let c = cell.cost, let raw = values[c], !raw.trimmingSpaces.isEmpty {
                    guard let v = Double(raw.trimmingSpaces), v.isFinite, v >= 0 else { problem(line, c, "'\(raw)' is not a cost (a number ≥ 0)"); continue }
                    costValue = v
                }
                if let earlier = seen[key + "\u{0}" + name] {
                    problem(line, modelColumn ?? cell.score, "prompt \(givenID.map { "'\($0)'" } ?? "'\(text.prefix(60))'") has model '\(name)' already (line \(earlier))"
                            + (hasID ? "" : "; give each prompt an id (--id-column) if the same text means two prompts"))
                    continue
                }
                seen[key + "\u{0}" + name] = line
                if !models.contains(name) { models.append(name) }
                var recorded: [(String, JSONValue)] = [("model", .string(name)), ("f1", .number(score)), ("precision", .number(score)),
                                                       ("recall", .number(score)), ("em", .number(score == 1 ? 1 : 0))]
                if let costValue { recorded.append(("cost", .number(costValue))) }
                rows.append(BaselineRow(line: line, question: text, id: givenID, action: models.firstIndex(of: name)!, answer: nil,
                                        groundTruth: nil, f1: score, recorded: .object(recorded)))
            }
        }
        if !problems.isEmpty {
            let shown = problems.prefix(20).joined(separator: "\n  ")
            throw DataError(file: path, line: nil, "\(problems.count) bad row\(problems.count == 1 ? "" : "s"):\n  \(shown)" + (problems.count > 20 ? "\n  … and \(problems.count - 20) more" : ""))
        }
        guard !rows.isEmpty else { throw DataError(file: path, line: nil, "no rows (the file has a header only)") }
        return Result(rows: rows, models: models, questions: questions)
    }

    /// The score table of an import: one role (`model`), an action per model.
    public static func scoreTable(_ r: Result) throws -> ScoreTable {
        try ScoreTable(rows: r.rows, space: ActionSpace(candidates: r.models.count, roles: ["model"]), useRecorded: true)
    }

    /// `questions.jsonl`: a line per question, `_id`, `question` and (when known) `type`.
    public static func questionLines(_ r: Result) -> String {
        r.questions.map { q in
            JSONValue.object([("_id", .string(q.id)), ("question", .string(q.text))] + (q.type.map { [("type", JSONValue.string($0))] } ?? [])).canonical + "\n"
        }.joined()
    }
}
