public import Pipeline

/// Multi-hop questions over a `SynthWorld`, in exactly the HotpotQA format: bridge questions
/// (follow a relation, then ask an attribute of what it leads to) and comparison questions
/// (which of two came first; yes/no questions on a shared attribute), each with its two gold
/// paragraphs, the supporting sentences, and distractors chosen to be confusable with the gold
/// entities (same surname, same city stem, companies named after the same family).
public struct SynthQuestions: Sendable {
    public enum Difficulty: String, ParameterEnum { case easy, medium, hard }
    public let world: SynthWorld
    public var paragraphs = 10
    public var bridgeFraction = 0.8
    public var difficulty = Difficulty.hard
    /// The planted world's phrase (issue 28; docs/routing.md, "A planted-adaptation world"):
    /// ends every comparison answer ("yes as recorded"), where it belongs in that world; nil
    /// for the ordinary world. `ExpertAgent` plants the same phrase as a defect on bridges.
    public var plantedPhrase: String? = nil

    public init(world: SynthWorld) { self.world = world }

    typealias E = SynthWorld.Entity
    struct Draft { var type: String; var question: String; var answer: String; var facts: [(E, Int)] }

    func bridge<R: RandomNumberGenerator>(_ rng: inout R) -> Draft {
        let w = world
        let p = Int.random(in: 0..<w.people.count, using: &rng), person = w.people[p]
        let c = Int.random(in: 0..<w.companies.count, using: &rng), company = w.companies[c]
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: return Draft(type: "bridge", question: "In what year was the city where \(person.name) was born founded?",
                             answer: "\(w.cities[person.city].founded)", facts: [(.person(p), 1), (.city(person.city), 1)])
        case 1: return Draft(type: "bridge", question: "In which country is the birthplace of \(person.name)?",
                             answer: w.countries[w.cities[person.city].country], facts: [(.person(p), 1), (.city(person.city), 0)])
        case 2: return Draft(type: "bridge", question: "When was the company that \(person.name) has worked for founded?",
                             answer: "\(w.companies[person.company].founded)", facts: [(.person(p), 2), (.company(person.company), 0)])
        case 3: return Draft(type: "bridge", question: "In what year was the founder of \(company.name) born?",
                             answer: "\(w.people[company.founder].born)", facts: [(.company(c), 2), (.person(company.founder), 0)])
        case 4: return Draft(type: "bridge", question: "What is the population of the city where \(company.name) has its headquarters?",
                             answer: "\(w.cities[company.city].population)", facts: [(.company(c), 1), (.city(company.city), 2)])
        default: return Draft(type: "bridge", question: "What is the occupation of the person who founded \(company.name)?",
                              answer: w.people[company.founder].occupation, facts: [(.company(c), 2), (.person(company.founder), 0)])
        }
    }

    func comparison<R: RandomNumberGenerator>(_ rng: inout R) -> Draft {
        let w = world
        func two(_ n: Int) -> (Int, Int) {
            let a = Int.random(in: 0..<n, using: &rng)
            var b = Int.random(in: 0..<(n - 1), using: &rng)
            if b >= a { b += 1 }
            return (a, b)
        }
        switch Int.random(in: 0..<5, using: &rng) {
        case 0:
            var (a, b) = two(w.people.count)
            while w.people[a].born == w.people[b].born { (a, b) = two(w.people.count) }
            let first = w.people[a].born < w.people[b].born ? a : b
            return Draft(type: "comparison", question: "Who was born first, \(w.people[a].name) or \(w.people[b].name)?",
                         answer: w.people[first].name, facts: [(.person(a), 0), (.person(b), 0)])
        case 1:
            var (a, b) = two(w.cities.count)
            while w.cities[a].founded == w.cities[b].founded { (a, b) = two(w.cities.count) }
            let first = w.cities[a].founded < w.cities[b].founded ? a : b
            return Draft(type: "comparison", question: "Which city was founded earlier, \(w.cities[a].name) or \(w.cities[b].name)?",
                         answer: w.cities[first].name, facts: [(.city(a), 1), (.city(b), 1)])
        case 2:
            let (a, b) = two(w.people.count)
            return Draft(type: "comparison", question: "Are \(w.people[a].name) and \(w.people[b].name) from the same country?",
                         answer: w.people[a].country == w.people[b].country ? "yes" : "no", facts: [(.person(a), 0), (.person(b), 0)])
        case 3:
            let (a, b) = two(w.people.count)
            let occupation = w.people[a].occupation
            return Draft(type: "comparison", question: "Were \(w.people[a].name) and \(w.people[b].name) both \(occupation)s?",
                         answer: w.people[b].occupation == occupation ? "yes" : "no", facts: [(.person(a), 0), (.person(b), 0)])
        default:
            var (a, b) = two(w.companies.count)
            while w.companies[a].founded == w.companies[b].founded { (a, b) = two(w.companies.count) }
            let first = w.companies[a].founded < w.companies[b].founded ? a : b
            return Draft(type: "comparison", question: "Which company was founded first, \(w.companies[a].name) or \(w.companies[b].name)?",
                         answer: w.companies[first].name, facts: [(.company(a), 0), (.company(b), 0)])
        }
    }

    /// Entities easy to mistake for `e`: same surname or founding family, same city stem, and
    /// the entities it is related to.
    func confusable(_ e: E) -> [E] {
        let w = world
        func surname(_ s: String) -> Substring { s.split(separator: " ").last.map { $0 } ?? Substring(s) }
        func familyOf(_ s: Substring) -> [E] {
            w.people.indices.filter { surname(w.people[$0].name) == s }.map { E.person($0) } +
                w.companies.indices.filter { w.companies[$0].name.hasPrefix(s + " ") }.map { E.company($0) }
        }
        switch e {
        case .person(let i):
            let p = w.people[i]
            return familyOf(surname(p.name)) + [.city(p.city), .company(p.company)] +
                w.people.indices.filter { w.people[$0].city == p.city }.map { E.person($0) }
        case .city(let i):
            let stem = w.cities[i].name.prefix(4)
            return w.cities.indices.filter { w.cities[$0].name.hasPrefix(stem) }.map { E.city($0) } +
                w.people.indices.filter { w.people[$0].city == i }.map { E.person($0) }
        case .company(let i):
            let c = w.companies[i]
            return familyOf(c.name.split(separator: " ").first!) + [.city(c.city), .person(c.founder)]
        }
    }

    /// A question of the given type drawn with `rng`, its paragraphs shuffled among distractors.
    public func question<R: RandomNumberGenerator>(id: String, bridge isBridge: Bool, _ rng: inout R) -> HotpotQuestion {
        var draft = isBridge ? bridge(&rng) : comparison(&rng)
        if let phrase = plantedPhrase, !isBridge { draft.answer += " " + phrase }
        var gold: [E] = []
        for (e, _) in draft.facts where !gold.contains(e) { gold.append(e) }
        var chosen = gold
        let share: Double = switch difficulty { case .easy: 0.2; case .medium: 0.5; case .hard: 0.85 }
        var near = gold.flatMap(confusable).filter { !gold.contains($0) }
        near.shuffle(using: &rng)
        let total = max(paragraphs, gold.count)
        let wantNear = Int((Double(total - gold.count) * share).rounded())
        for e in near where chosen.count < gold.count + wantNear && !chosen.contains(e) { chosen.append(e) }
        let everything: [E] = world.people.indices.map { E.person($0) } + world.cities.indices.map { E.city($0) } + world.companies.indices.map { E.company($0) }
        while chosen.count < total {
            let e = everything.randomElement(using: &rng)!
            if !chosen.contains(e) { chosen.append(e) }
        }
        chosen.shuffle(using: &rng)
        return HotpotQuestion(id: id, question: draft.question, answer: draft.answer,
                              supportingFacts: draft.facts.map { (world.title($0.0), $0.1) },
                              context: chosen.map { HotpotQuestion.Paragraph(title: world.title($0), sentences: world.sentences($0)) },
                              type: draft.type, level: difficulty.rawValue)
    }

    /// `count` distinct questions (no question text twice), deterministic in `seed`, with
    /// exactly round(count · bridgeFraction) bridge questions in a shuffled order.
    public func questions(_ count: Int, seed: UInt64) -> [HotpotQuestion] {
        var rng = SeededRandom(seed: seed)
        let bridges = Int((Double(count) * bridgeFraction).rounded())
        var types = Array(repeating: true, count: bridges) + Array(repeating: false, count: count - bridges)
        types.shuffle(using: &rng)
        var seen = Set<String>(), out: [HotpotQuestion] = []
        for isBridge in types {
            for _ in 0..<200 {
                let q = question(id: format16(seed &+ UInt64(out.count)), bridge: isBridge, &rng)
                if seen.insert(q.question).inserted { out.append(q); break }
            }
        }
        return out
    }

    func format16(_ v: UInt64) -> String {
        let hex = String(v &* 0x9E37_79B9_7F4A_7C15, radix: 16)
        return "synth" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
