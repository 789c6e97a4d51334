public import Pipeline

/// The parameters that name candidates and roles, shared by the stages that read samples
/// (`score`, `build-sft`): `pair` or `model_name_to_id` for rows without `action_index`, and
/// `candidates` (K) and `roles` for the action space.
struct CandidateParams {
    var pair: String?
    var modelNameToID: [String: Int]?
    var candidates: Int?
    var roles: [String]?

    var space: ActionSpace { ActionSpace(candidates: candidates ?? 2, roles: roles ?? ActionSpace.referenceRoles) }

    func names() throws -> CandidateNames? {
        if let m = modelNameToID { return CandidateNames(ids: m) }
        return try pair.map { try CandidateNames(preset: $0) }
    }

    func validate(at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if let pair, CandidateNames.presets[pair] == nil {
            problems.append(SpecProblem(path.appending("pair"), "unknown pair '\(pair)'" + NearestName.hintOrChoices(pair, among: CandidateNames.presets.keys.sorted())))
        }
        if let k = candidates, k < 1 { problems.append(SpecProblem(path.appending("candidates"), "expected at least 1 candidate")) }
        if let r = roles, r.isEmpty { problems.append(SpecProblem(path.appending("roles"), "expected at least one role")) }
        return problems
    }

    static let parameters = [
        ParameterInfo("pair", "candidate preset mapping model names to ids (for rows without action_index): " + CandidateNames.presets.keys.sorted().joined(separator: ", ")),
        ParameterInfo("model_name_to_id", "mapping of model names to candidate ids"),
        ParameterInfo("candidates", "number of candidates K (default 2)"),
        ParameterInfo("roles", "role names (default [\"teacher\", \"student\"])"),
    ]
}
