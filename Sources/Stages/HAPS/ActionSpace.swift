/// The routing actions: one candidate per role. With K candidates and R roles there are K^R
/// actions, indexed with the first role most significant, so the paper's case (K = 2;
/// teacher, student) keeps the reference's indices 0:(0,0) 1:(0,1) 2:(1,0) 3:(1,1).
///
///     let space = ActionSpace(candidates: 2)
///     space.index(of: [1, 0])        // 2
///     space.assignment(of: 3)        // [1, 1]
///     space.output(for: [0, 1])      // {"teacher": 0,"student": 1}
public struct ActionSpace: Sendable, Equatable {
    public var candidates: Int
    public var roles: [String]

    public static let referenceRoles = ["teacher", "student"]

    public init(candidates: Int = 2, roles: [String] = ActionSpace.referenceRoles) {
        precondition(candidates >= 1 && !roles.isEmpty, "an action space needs candidates and roles")
        self.candidates = candidates
        self.roles = roles
    }

    public var count: Int { roles.reduce(1) { acc, _ in acc * candidates } }
    public var indices: Range<Int> { 0..<count }

    public func index(of assignment: [Int]) -> Int {
        precondition(assignment.count == roles.count && assignment.allSatisfy { $0 >= 0 && $0 < candidates })
        return assignment.reduce(0) { $0 * candidates + $1 }
    }

    public func assignment(of index: Int) -> [Int] {
        precondition(indices.contains(index), "action \(index) is outside 0..<\(count)")
        var rest = index
        var out = [Int](repeating: 0, count: roles.count)
        for r in stride(from: roles.count - 1, through: 0, by: -1) {
            out[r] = rest % candidates
            rest /= candidates
        }
        return out
    }

    /// An action in words: "teacher agent_a, student agent_b" with the candidates' names,
    /// "teacher 0, student 1" without them.
    public func describe(_ action: Int, names: [String]? = nil) -> String {
        let names = names.flatMap { $0.count == candidates ? $0 : nil }
        return zip(roles, assignment(of: action)).map { "\($0) \(names?[$1] ?? String($1))" }.joined(separator: ", ")
    }

    /// The router's target text, in the reference's exact spelling: `{"teacher": 0,"student": 1}`.
    public func output(for assignment: [Int]) -> String {
        "{" + zip(roles, assignment).map { "\"\($0)\": \($1)" }.joined(separator: ",") + "}"
    }
}
