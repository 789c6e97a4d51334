/// Replicates: the same configuration run under several seeds, so that a figure is read as a
/// mean with its spread across seeds instead of one draw (docs/sweeps.md, "Replicates").
/// A replicate differs from its siblings only by seed overrides (`seed=N`, `STAGE.seed=N`);
/// `sweep --seeds` makes them, and `sweep` and `exp show` pool them with `Summary`.
public enum Replicates {
    /// A figure over replicates: how many, their mean, the sample standard deviation (n − 1)
    /// and the two-sided 95% interval of the mean, mean ± t(0.975, n − 1) · sd / √n (nil with
    /// fewer than two values).
    public struct Summary: Sendable, Equatable {
        public var count: Int
        public var mean: Double
        public var sd: Double?
        public var interval: (low: Double, high: Double)? {
            guard let sd, count > 1 else { return nil }
            let half = Replicates.studentT975(degreesOfFreedom: count - 1) * sd / Double(count).squareRoot()
            return (mean - half, mean + half)
        }

        public init?(_ values: [Double]) {
            guard !values.isEmpty else { return nil }
            count = values.count
            mean = values.reduce(0, +) / Double(count)
            let m = mean
            sd = count > 1 ? (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(count - 1)).squareRoot() : nil
        }

        /// "mean ± sd [low, high]" (the mean alone for one value), each with `digits` decimals.
        public func text(digits: Int = 4) -> String {
            guard let sd, let interval else { return Format.fixed(mean, digits) }
            return "\(Format.fixed(mean, digits)) ± \(Format.fixed(sd, digits)) [\(Format.fixed(interval.low, digits)), \(Format.fixed(interval.high, digits))]"
        }
    }

    /// Whether an override sets a seed (the spec's or a stage's): what replicates may differ by.
    public static func isSeedOverride(_ override: String) -> Bool {
        let lhs = override.prefix { $0 != "=" }
        return lhs == "seed" || lhs.hasSuffix(".seed")
    }

    /// The overrides without the seed ones: what replicates of one configuration share.
    public static func configuration(_ overrides: [String]) -> [String] { overrides.filter { !isSeedOverride($0) } }

    /// Runs (each by its overrides) grouped by configuration, in order of first appearance:
    /// each group's shared overrides and its members' positions.
    public static func groups(_ runs: [[String]]) -> [(configuration: [String], members: [Int])] {
        var groups: [(configuration: [String], members: [Int])] = [], index: [[String]: Int] = [:]
        for (i, overrides) in runs.enumerated() {
            let key = configuration(overrides)
            if let g = index[key] { groups[g].members.append(i) } else { index[key] = groups.count; groups.append((key, [i])) }
        }
        return groups
    }

    /// The 0.975 quantile of Student's t distribution with `df` degrees of freedom: tabulated
    /// to six decimals for 1–30, above that the Cornish–Fisher expansion around the normal's
    /// 1.959964 (within 2e-5 of the exact value from 31 on).
    public static func studentT975(degreesOfFreedom df: Int) -> Double {
        precondition(df >= 1, "degrees of freedom start at 1")
        let table: [Double] = [12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
                               2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
                               2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272]
        if df <= table.count { return table[df - 1] }
        let z = 1.959963984540054, n = Double(df)
        let z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z
        return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n)
            + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * n * n * n)
    }
}

extension SweepTable {
    /// A configuration's replicates: the rows of the points that differ only by seeds.
    struct ReplicateGroup {
        var label: String
        var rows: [Int]
    }

    /// The points grouped by configuration (their overrides less the seed ones), in order of
    /// first appearance; a group's label is its first point's less the `seed=` parts ("spec"
    /// when nothing else is left). Nil when no point has a seed override: nothing to pool.
    static func replicateGroups(_ sweep: Sweep) -> [ReplicateGroup]? {
        guard sweep.points.contains(where: { $0.overrides.contains(where: Replicates.isSeedOverride) }) else { return nil }
        return Replicates.groups(sweep.points.map(\.overrides)).map { g in
            let label = sweep.points[g.members[0]].label.split(separator: ",").filter { !$0.hasPrefix("seed=") }.joined(separator: ",")
            return ReplicateGroup(label: label.isEmpty ? "spec" : label, rows: g.members)
        }
    }

    /// The table with each configuration's replicates pooled into one row (nil when the sweep
    /// has no seeds): its parameters less the seeds, "replicates" (how many are done, of how
    /// many), a state (done when all are, else the first of running, failed, pending that one
    /// is), and each figure as `Replicates.Summary.text` over the replicates that have it.
    /// `numeric`: each figure as four columns instead (FIGURE.mean, .sd, .low, .high), and
    /// FIGURE.n, for replicates.csv.
    public func pooled(_ sweep: Sweep, numeric: Bool = false) -> SweepTable? {
        guard let groups = SweepTable.replicateGroups(sweep), let state = header.firstIndex(of: "state") else { return nil }
        let seedColumns = Set((sweep.points.first?.overrides ?? []).enumerated().filter { Replicates.isSeedOverride($0.element) }.map { $0.offset + 1 })
        let parameters = (1..<state).filter { !seedColumns.contains($0) }
        let figures = Array(header.indices.dropFirst(state + 1))
        var newHeader = ["point"] + parameters.map { header[$0] } + ["replicates", "state"]
        for f in figures {
            newHeader += numeric ? ["mean", "sd", "low", "high", "n"].map { "\(header[f]).\($0)" } : [header[f]]
        }
        let newRows = groups.map { g -> [String] in
            let members = g.rows.map { rows[$0] }
            let states = members.map { $0[state] }
            let done = states.filter { $0 == "done" }.count
            let combined = done == states.count ? "done" : ["running", "failed", "pending"].first { states.contains($0) } ?? "pending"
            var row = [g.label] + parameters.map { members[0][$0] } + ["\(done)/\(members.count)", combined]
            for f in figures {
                let summary = Replicates.Summary(members.compactMap { Double($0[f]) })
                if numeric {
                    let i = summary?.interval
                    row += [summary.map { Format.fixed($0.mean, 4) }, summary?.sd.map { Format.fixed($0, 4) },
                            i.map { Format.fixed($0.low, 4) }, i.map { Format.fixed($0.high, 4) }, summary.map { "\($0.count)" }].map { $0 ?? "" }
                } else {
                    row.append(summary?.text() ?? "")
                }
            }
            return row
        }
        return SweepTable(header: newHeader, rows: newRows)
    }
}

extension SweepTable {
    /// A pooled table (`pooled`) without the figures that neither the configurations nor the
    /// seeds move (one mean in every row and no spread within any, as `numeric`, the same
    /// table's numbers, says): what the replicates change stands out.
    func withoutFixedFigures(_ numeric: SweepTable) -> SweepTable {
        guard let state = header.firstIndex(of: "state") else { return self }
        let keep = header.indices.filter { c in
            guard c > state else { return true }
            guard let sd = numeric.header.firstIndex(of: header[c] + ".sd") else { return true }
            let moved = numeric.rows.contains { Double($0[sd]).map { $0 > 0 } ?? false }
            return moved || (rows.count > 1 && Set(rows.map { $0[c] }).count > 1)
        }
        return SweepTable(header: keep.map { header[$0] }, rows: rows.map { r in keep.map { r[$0] } })
    }
}
