import Foundation
import Stages

/// The server's figures in Prometheus' text exposition format (`GET /metrics`): requests by
/// path and status, their latency (to the response's head) as a histogram, the system's
/// routing decisions per action, and tokens per candidate.
final class ServeMetrics: @unchecked Sendable {
    static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    private let lock = NSLock()
    private var requests: [String: Int] = [:]  // "path\u{0}status"
    private var latency: [String: (counts: [Int], sum: Double, count: Int)] = [:]  // by path
    private var decisions: [Int: Int] = [:]
    private var tokens: [String: (prompt: Int, completion: Int)] = [:]
    private var answers: [String: Int] = [:]  // "lora" / "plain"
    /// The action's labels (its index and each role's candidate), set when a system is served.
    var actionLabels: (Int) -> String = { "action=\"\($0)\"" }

    /// The paths counted by name; any other is counted as "other", so that probes of random
    /// paths cannot grow the exposition without bound.
    static let paths: Set<String> = ["/", "/v1/models", "/v1/chat/completions", "/retrieve", "/metrics"]

    func request(path given: String, status: Int, seconds: Double) {
        let path = ServeMetrics.paths.contains(given) ? given : "other"
        lock.withLock {
            requests["\(path)\u{0}\(status)", default: 0] += 1
            var h = latency[path] ?? (Array(repeating: 0, count: ServeMetrics.buckets.count), 0, 0)
            for (i, b) in ServeMetrics.buckets.enumerated() where seconds <= b { h.counts[i] += 1 }
            h.sum += seconds; h.count += 1
            latency[path] = h
        }
    }

    func routed(action: Int) { lock.withLock { decisions[action, default: 0] += 1 } }

    /// An answered question: its route, and the tokens its candidates used.
    func answered(_ a: ServedSystem.Answer, names: [String], space: ActionSpace) {
        let assignment = space.assignment(of: a.decision.action)
        lock.withLock {
            decisions[a.decision.action, default: 0] += 1
            answers[a.adapted ? "true" : "false", default: 0] += 1
            for t in a.sample.result.turns {
                guard let r = space.roles.firstIndex(of: t.role.rawValue) else { continue }
                let name = names[assignment[r]]
                var c = tokens[name] ?? (0, 0)
                c.prompt += t.promptTokens; c.completion += t.completionTokens
                tokens[name] = c
            }
        }
    }

    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// The exposition text.
    func text() -> String {
        lock.withLock {
            var out = "# HELP haps_requests_total HTTP requests answered, by path and status.\n# TYPE haps_requests_total counter\n"
            for key in requests.keys.sorted() {
                let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
                out += "haps_requests_total{path=\"\(ServeMetrics.escaped(String(parts[0])))\",status=\"\(parts[1])\"} \(requests[key]!)\n"
            }
            out += "# HELP haps_request_duration_seconds Time to the response's head (a stream's first byte), by path.\n# TYPE haps_request_duration_seconds histogram\n"
            for path in latency.keys.sorted() {
                let h = latency[path]!, p = ServeMetrics.escaped(path)
                for (i, b) in ServeMetrics.buckets.enumerated() { out += "haps_request_duration_seconds_bucket{path=\"\(p)\",le=\"\(b)\"} \(h.counts[i])\n" }
                out += "haps_request_duration_seconds_bucket{path=\"\(p)\",le=\"+Inf\"} \(h.count)\n"
                out += "haps_request_duration_seconds_sum{path=\"\(p)\"} \(h.sum)\nhaps_request_duration_seconds_count{path=\"\(p)\"} \(h.count)\n"
            }
            out += "# HELP haps_routing_decisions_total Questions routed to each action (teacher and student).\n# TYPE haps_routing_decisions_total counter\n"
            for a in decisions.keys.sorted() { out += "haps_routing_decisions_total{\(actionLabels(a))} \(decisions[a]!)\n" }
            out += "# HELP haps_answers_total Questions answered, with the generated updates (lora=\"true\") or without.\n# TYPE haps_answers_total counter\n"
            for k in answers.keys.sorted() { out += "haps_answers_total{lora=\"\(k)\"} \(answers[k]!)\n" }
            out += "# HELP haps_tokens_total Tokens each candidate read (prompt) and wrote (completion) in the dialogues.\n# TYPE haps_tokens_total counter\n"
            for name in tokens.keys.sorted() {
                let n = ServeMetrics.escaped(name)
                out += "haps_tokens_total{candidate=\"\(n)\",kind=\"prompt\"} \(tokens[name]!.prompt)\n"
                out += "haps_tokens_total{candidate=\"\(n)\",kind=\"completion\"} \(tokens[name]!.completion)\n"
            }
            return out
        }
    }
}
