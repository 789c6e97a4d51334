public import Pipeline

/// The summary figures each artifact kind exposes to sweep tables (docs/sweeps.md): read from
/// the artifact's files, in a fixed order.
public enum ArtifactFigures {
    public static func figures(kind: ArtifactKind, directory: String) -> [(name: String, value: Double)] {
        switch kind.name {
        case "score-table":
            guard let text = try? FileIO.readString(directory + "/summary.json"), let j = try? JSONParser.parse(text) else { return [] }
            return ["best_fixed_f1", "oracle_f1", "oracle_gap", "random_f1"].compactMap { k in j[k]?.doubleValue.map { (k, $0) } }
        case "sft-data":
            guard let text = try? FileIO.readString(directory + "/stats.txt") else { return [] }
            for line in text.split(separator: "\n") where line.hasPrefix("rows written: ") {
                if let n = Double(line.dropFirst("rows written: ".count)) { return [("sft_rows", n)] }
            }
            return []
        default:
            return []
        }
    }
}
