public import Pipeline

/// A made-up world for multi-hop questions: people, cities, companies and countries with
/// attributes and relations, and a paragraph written from each entity. Names come in families
/// (people sharing a surname, cities sharing a stem, companies named after people), so that
/// distractor paragraphs are genuinely confusable with the gold ones.
public struct SynthWorld: Sendable {
    public struct Person: Sendable { var name: String; var born: Int; var country: Int; var city: Int; var company: Int; var occupation: String; var she: Bool }
    public struct City: Sendable { var name: String; var country: Int; var founded: Int; var population: Int }
    public struct Company: Sendable { var name: String; var founded: Int; var city: Int; var founder: Int; var industry: String }
    public var countries: [String] = []
    public var people: [Person] = []
    public var cities: [City] = []
    public var companies: [Company] = []

    static let syllables = ["ka", "lo", "mi", "ren", "tha", "vor", "el", "dan", "sil", "mar", "tor", "quin", "bel", "ash", "nor",
                            "vel", "dro", "fen", "gar", "hul", "is", "jor", "ke", "lun", "ost", "pra", "ru", "sen", "ti", "wen"]
    static let occupations = ["architect", "painter", "chemist", "novelist", "composer", "engineer", "historian", "cyclist", "botanist", "sculptor"]
    static let industries = ["shipbuilding", "software", "textile", "publishing", "brewing", "railway", "pharmaceutical", "glassmaking"]

    static func word<R: RandomNumberGenerator>(_ n: Int, _ rng: inout R) -> String {
        let w = (0..<n).map { _ in syllables.randomElement(using: &rng)! }.joined()
        return w.prefix(1).uppercased() + w.dropFirst()
    }

    /// A world of about `people` people (cities and companies in proportion), seeded.
    public init(people count: Int, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var used = Set<String>()
        func unique(_ make: () -> String) -> String {
            while true { let n = make(); if used.insert(n).inserted { return n } }
        }
        countries = (0..<max(4, count / 12)).map { _ in unique { SynthWorld.word(2, &rng) + ["ia", "land", "mark", "ria"].randomElement(using: &rng)! } }
        // Cities in stem families: "Trelmouth", "Trelford"...
        let stems = (0..<max(3, count / 8)).map { _ in SynthWorld.word(2, &rng) }
        for i in 0..<max(6, count / 3) {
            let stem = stems[i % stems.count]
            let name = unique { stem + ["mouth", "ford", "vale", "holm", "stad", "burg", "wick", "haven"].randomElement(using: &rng)! }
            cities.append(City(name: name, country: Int.random(in: 0..<countries.count, using: &rng), founded: Int.random(in: 1050...1890, using: &rng),
                               population: Int.random(in: 8...900, using: &rng) * 1000))
        }
        // People in surname families.
        let surnames = (0..<max(3, count / 4)).map { _ in SynthWorld.word(Int.random(in: 2...3, using: &rng), &rng) }
        for i in 0..<max(8, count) {
            let surname = surnames[i % surnames.count]
            let name = unique { SynthWorld.word(2, &rng) + " " + surname }
            let city = Int.random(in: 0..<cities.count, using: &rng)
            people.append(Person(name: name, born: Int.random(in: 1880...1995, using: &rng), country: cities[city].country, city: city,
                                 company: 0, occupation: SynthWorld.occupations.randomElement(using: &rng)!, she: Bool.random(using: &rng)))
        }
        // Companies named after their founders (confusable with them and with each other).
        for _ in 0..<max(4, count / 4) {
            let founder = Int.random(in: 0..<people.count, using: &rng)
            let surname = String(people[founder].name.split(separator: " ").last!)
            let name = unique { surname + " " + ["Systems", "Works", "Foundry", "Press", "Labs", "Brothers", "Holdings"].randomElement(using: &rng)! }
            companies.append(Company(name: name, founded: Int.random(in: 1900...2015, using: &rng), city: Int.random(in: 0..<cities.count, using: &rng),
                                     founder: founder, industry: SynthWorld.industries.randomElement(using: &rng)!))
        }
        for i in people.indices { people[i].company = Int.random(in: 0..<companies.count, using: &rng) }
    }

    /// The entity behind a paragraph title.
    public enum Entity: Hashable, Sendable { case person(Int), city(Int), company(Int) }

    public func title(_ e: Entity) -> String {
        switch e { case .person(let i): people[i].name; case .city(let i): cities[i].name; case .company(let i): companies[i].name }
    }

    /// The paragraph about an entity, as HotpotQA writes them: sentences after the first begin
    /// with a space. The sentence indices are fixed per kind (questions cite them).
    public func sentences(_ e: Entity) -> [String] {
        switch e {
        case .person(let i):
            let p = people[i], pronoun = p.she ? "She" : "He", last = String(p.name.split(separator: " ").last!)
            return ["\(p.name) (born \(p.born)) is a \(p.occupation) from \(countries[p.country]).",   // 0: born, country, occupation
                    " \(pronoun) was born in \(cities[p.city].name).",                                  // 1: birthplace
                    " \(pronoun) has worked for \(companies[p.company].name).",                         // 2: employer
                    " \(last) is known for work admired across \(countries[p.country])."]
        case .city(let i):
            let c = cities[i]
            return ["\(c.name) is a city in \(countries[c.country]).",                                   // 0: country
                    " It was founded in \(c.founded).",                                                  // 1: founded
                    " \(c.name) has a population of about \(c.population)."]                             // 2: population
        case .company(let i):
            let c = companies[i]
            return ["\(c.name) is a \(c.industry) company founded in \(c.founded).",                     // 0: industry, founded
                    " Its headquarters are in \(cities[c.city].name).",                                  // 1: headquarters
                    " It was founded by \(people[c.founder].name)."]                                     // 2: founder
        }
    }
}
