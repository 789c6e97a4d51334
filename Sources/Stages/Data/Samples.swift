public import Pipeline

/// The `samples` artifact: every question × role assignment with its answer, in the
/// reference's `baseline.jsonl` format (one JSON object a line: qid, action_index, question,
/// teacher, student, answer, ground_truth, f1, precision, recall, em). A user's own
/// `baseline.jsonl` given as an input file is a samples artifact too.
public enum Samples {
    public static let kind: ArtifactKind = "samples"
    public static let fileName = "baseline.jsonl"

    /// The table's file: the artifact itself when it is one file, else its `baseline.jsonl`.
    public static func baselinePath(_ input: InputArtifact) -> String {
        input.manifest.files.count == 1 ? input.path : input.path(of: fileName)
    }
}
