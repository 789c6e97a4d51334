public import Pipeline

/// Options of build-sft, named after the reference script's flags.
public struct BuildSFTOptions: Sendable, Equatable {
    public enum TiePolicy: String, ParameterEnum { case all, random_one, deterministic_one }
    public enum Balance: String, ParameterEnum { case none, undersample, oversample, smart_oversample }

    public var seed = PipelineSpec.defaultSeed
    public var tiePolicy = TiePolicy.deterministic_one
    public var minMaxScore = 1e-6
    public var balance = Balance.none
    public var targetPerClass: Int?
    public var smartTarget: Int?
    public var smartFracOfMax: Double?
    public var smartMinorityDupFactor: Double?
    public var autoSkipIfBalancedRatio: Double?
    public init() {}
}

/// One row of SFT data: `{question, reward, output}`.
public struct SFTRow: Sendable, Equatable {
    public var question: String
    public var reward: Double
    public var output: String
    public var action: Int
}

/// What build-sft did, stage by stage, for the printed statistics.
public struct BuildSFTReport: Sendable, Equatable {
    public var rowsRead = 0
    public var skippedRows: [String: Int] = [:]
    public var questions = 0
    public var skippedQuestionsBelowMinScore = 0
    /// Class counts (per action index) after the tie policy and after balancing.
    public var countsAfterTies: [Int] = []
    public var countsAfterBalance: [Int] = []
    public var balanceSkipped: String?
    public var warnings: [String] = []

    /// The statistics as lines, as `haps-pipe build-sft` prints them.
    public var lines: [String] {
        var out = ["read \(rowsRead) rows, \(questions) questions"]
        for (why, n) in skippedRows.sorted(by: { $0.key < $1.key }) { out.append("skipped \(n) rows: \(why)") }
        if skippedQuestionsBelowMinScore > 0 {
            out.append("skipped \(skippedQuestionsBelowMinScore) questions whose best score is below min_max_score")
        }
        out.append("class counts after tie policy: \(BuildSFTReport.format(countsAfterTies))")
        if let why = balanceSkipped { out.append("balance: \(why)") }
        out.append("class counts after balance:    \(BuildSFTReport.format(countsAfterBalance))")
        out.append("rows written: \(countsAfterBalance.reduce(0, +))")
        return out + warnings.map { "warning: " + $0 }
    }

    static func format(_ counts: [Int]) -> String {
        counts.enumerated().map { "\($0.offset): \($0.element)" }.joined(separator: ", ")
    }
}

/// The reference's build_sft (docs/data.md), exactly, random choices included: one
/// CPython-compatible generator seeded with `seed`, used for every random step in order.
public enum BuildSFT {
    /// A scored action of a question, in row order.
    public struct Scored: Sendable, Equatable {
        public var action: Int
        public var score: Double
        public init(action: Int, score: Double) { self.action = action; self.score = score }
    }

    /// Questions in order of first appearance, each with its scored actions in row order.
    public struct Grouped: Sendable {
        public var questions: [(question: String, scored: [Scored])] = []
        public init() {}
        /// Keyed by UTF-8 bytes, i.e. by code points, as Python compares strings (Swift's
        /// String equality is canonical equivalence, which would merge "é" and "e\u{301}").
        private var index: [[UInt8]: Int] = [:]
        public mutating func add(question: String, _ s: Scored) {
            let key = Array(question.utf8)
            if let i = index[key] {
                questions[i].scored.append(s)
            } else {
                index[key] = questions.count
                questions.append((question, [s]))
            }
        }
    }

    public static func run(_ grouped: Grouped, space: ActionSpace, options: BuildSFTOptions, report: inout BuildSFTReport) -> [SFTRow] {
        var rng = PythonRandom(seed: options.seed)
        report.questions = grouped.questions.count
        var rows: [SFTRow] = []
        for (question, scored) in grouped.questions {
            guard let best = scored.map(\.score).max() else { continue }
            if best < options.minMaxScore { report.skippedQuestionsBelowMinScore += 1; continue }
            let tied = scored.filter { abs($0.score - best) <= 1e-12 }
            let kept: [Scored]
            switch options.tiePolicy {
            case .all: kept = tied
            case .random_one: kept = [rng.choice(tied)!]
            case .deterministic_one: kept = [tied.min { $0.action < $1.action }!]
            }
            for k in kept {
                rows.append(SFTRow(question: question, reward: k.score, output: space.output(for: space.assignment(of: k.action)), action: k.action))
            }
        }
        report.countsAfterTies = counts(rows, space)
        rows = balance(rows, space: space, options: options, rng: &rng, report: &report)
        report.countsAfterBalance = counts(rows, space)
        return rows
    }

    static func counts(_ rows: [SFTRow], _ space: ActionSpace) -> [Int] {
        var c = [Int](repeating: 0, count: space.count)
        for r in rows { c[r.action] += 1 }
        return c
    }

    static func balance(_ rows: [SFTRow], space: ActionSpace, options o: BuildSFTOptions, rng: inout PythonRandom,
                        report: inout BuildSFTReport) -> [SFTRow] {
        var buckets = [[SFTRow]](repeating: [], count: space.count)
        for r in rows { buckets[r.action].append(r) }
        let sizes = buckets.map(\.count)
        let smallest = sizes.min() ?? 0, largest = sizes.max() ?? 0
        switch o.balance {
        case .none:
            return rows
        case .undersample, .oversample:
            let target = o.targetPerClass ?? (o.balance == .undersample ? smallest : largest)
            if o.balance == .undersample && target == 0 && !rows.isEmpty {
                report.warnings.append("undersample target is 0 (an action has no rows), so the output is empty; this is the reference's behaviour. Pass --target-per-class, or use oversample or smart_oversample")
            }
            var out: [SFTRow] = []
            for bucket in buckets where !bucket.isEmpty {
                let n = bucket.count
                if o.balance == .undersample {
                    out += n <= target ? bucket : rng.sample(bucket, target)
                } else {
                    out += n >= target ? rng.sample(bucket, target) : bucket + rng.choices(bucket, k: target - n)
                }
            }
            rng.shuffle(&out)
            return out
        case .smart_oversample:
            if largest == 0 { report.balanceSkipped = "no rows"; return rows }
            if let ratio = o.autoSkipIfBalancedRatio, smallest > 0, Double(largest) / Double(smallest) <= ratio {
                report.balanceSkipped = "skipped: largest/smallest = \(Double(largest) / Double(smallest)) <= \(ratio)"
                return rows
            }
            let target: (Int) -> Int
            if let t = o.smartTarget {
                target = { max($0, t) }
            } else if let f = o.smartFracOfMax {
                target = { max($0, Int(max(1.0, Double(Int(Double(largest) * f))))) }
            } else if let d = o.smartMinorityDupFactor {
                target = { min(largest, max($0, Int(Double($0) * d + 0.9999))) }
            } else {
                report.balanceSkipped = "smart_oversample without --smart-target, --smart-frac-of-max or --smart-minority-dup-factor leaves the data unchanged"
                return rows
            }
            var out: [SFTRow] = []
            for bucket in buckets where !bucket.isEmpty {
                let n = bucket.count, t = target(n)
                if t <= n { out += bucket; continue }
                var grown: [SFTRow] = []
                for _ in 0..<(t / n) { grown += bucket }
                grown += rng.sample(bucket, t % n)
                rng.shuffle(&grown)
                out += grown
            }
            rng.shuffle(&out)
            return out
        }
    }
}
