#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Problems found while decoding a stage's parameters.
public struct ParamDecodingProblems: Error, Sendable {
    public var problems: [SpecProblem]
}

/// Strict decoding of stage parameters: unknown names are errors (with the closest valid
/// name), and type errors name the JSON path of the bad value.
enum ParamDecoder {
    static func decode<P: Decodable>(_ type: P.Type, from json: JSONValue, at path: JSONPath, known: [String], stageType: String)
        -> Result<P, ParamDecodingProblems>
    {
        var problems: [SpecProblem] = []
        guard let members = json.objectMembers else {
            return .failure(.init(problems: [SpecProblem(path, "expected an object of parameters, found \(json.typeDescription)")]))
        }
        for (name, _) in members where !known.contains(name) {
            problems.append(SpecProblem(path.appending(name),
                "unknown parameter '\(name)' for stage type '\(stageType)'" + NearestName.hint(name, among: known)))
        }
        if !problems.isEmpty { return .failure(.init(problems: problems)) }
        do {
            return .success(try JSONDecoder().decode(P.self, from: Data(json.canonical.utf8)))
        } catch let error as DecodingError {
            return .failure(.init(problems: [problem(error, base: path, json: json)]))
        } catch {
            return .failure(.init(problems: [SpecProblem(path, "\(error)")]))
        }
    }

    static func problem(_ error: DecodingError, base: JSONPath, json: JSONValue) -> SpecProblem {
        func pathOf(_ keys: [any CodingKey]) -> JSONPath {
            var p = base
            for k in keys { if let i = k.intValue { p = p.appending(index: i) } else { p = p.appending(k.stringValue) } }
            return p
        }
        func value(at keys: [any CodingKey]) -> JSONValue? {
            var v: JSONValue? = json
            for k in keys {
                if let i = k.intValue, let a = v?.arrayValue { v = i < a.count ? a[i] : nil } else { v = v?[k.stringValue] }
            }
            return v
        }
        switch error {
        case .typeMismatch(let type, let ctx):
            let found = value(at: ctx.codingPath)?.typeDescription ?? "nothing"
            return SpecProblem(pathOf(ctx.codingPath), "expected \(typeName(type)), found \(found)")
        case .valueNotFound(let type, let ctx):
            return SpecProblem(pathOf(ctx.codingPath), "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let ctx):
            return SpecProblem(pathOf(ctx.codingPath), "missing parameter '\(key.stringValue)'")
        case .dataCorrupted(let ctx):
            return SpecProblem(pathOf(ctx.codingPath), ctx.debugDescription)
        @unknown default:
            return SpecProblem(base, "\(error)")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "a boolean"
        default:
            let n = "\(type)"
            if n.hasPrefix("Array<") { return "an array" }
            if n.hasPrefix("Dictionary<") { return "an object" }
            return n
        }
    }
}
