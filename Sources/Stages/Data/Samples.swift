public import Pipeline

/// The `samples` artifact: every question × role assignment with its answer, in the
/// reference's `baseline.jsonl` format (one JSON object a line: qid, action_index, question,
/// teacher, student, answer, ground_truth, f1, precision, recall, em). A user's own
/// `baseline.jsonl` given as an input file is a samples artifact too.
public enum Samples {
    public static let fileName = "baseline.jsonl"

    /// The table's file: the artifact itself when it is one file; else `samples.jsonl` (the
    /// sample stage's rows, with token counts) or `baseline.jsonl`.
    public static func baselinePath(_ input: InputArtifact) -> String {
        if input.manifest.files.count == 1 { return input.path }
        return input.manifest.files["samples.jsonl"] != nil ? input.path(of: "samples.jsonl") : input.path(of: fileName)
    }
}
