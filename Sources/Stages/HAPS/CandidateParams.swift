public import Pipeline

/// The parameters that name candidates and roles, shared by the stages that read samples
/// (`score`, `build-sft`): `pair` or `model_name_to_id` for rows without `action_index`, and
/// `candidates` (K) and `roles` for the action space.
public struct CandidateParams: ParameterGroup {
    @Param("candidate preset mapping model names to ids (for rows without action_index): " + CandidateNames.presets.keys.sorted().joined(separator: ", "))
    var pair: String? = nil
    @Param("mapping of model names to candidate ids") var model_name_to_id: [String: Int]? = nil
    @Param("number of candidates K") var candidates = 2
    @Param("role names") var roles = ActionSpace.referenceRoles
    public init() {}

    public var space: ActionSpace { ActionSpace(candidates: candidates, roles: roles) }

    func names() throws -> CandidateNames? {
        if let m = model_name_to_id { return CandidateNames(ids: m) }
        return try pair.map { try CandidateNames(preset: $0) }
    }

    func validate(at path: JSONPath) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        if let pair, CandidateNames.presets[pair] == nil {
            problems.append(SpecProblem(path.appending("pair"), "unknown pair '\(pair)'" + NearestName.hintOrChoices(pair, among: CandidateNames.presets.keys.sorted())))
        }
        if candidates < 1 { problems.append(SpecProblem(path.appending("candidates"), "expected at least 1 candidate")) }
        if roles.isEmpty { problems.append(SpecProblem(path.appending("roles"), "expected at least one role")) }
        return problems
    }
}
