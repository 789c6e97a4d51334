import Foundation

/// What `haps-pipe serve` prints first on standard output: `haps-pipe serve: listening on
/// http://HOST:PORT (...)`. Tests that start the server read its address from that line.
public enum ServerAddress {
    /// The base URL and port from the first line of `output` (waits for it); an error names
    /// what came instead and the server's log.
    public static func read(_ output: Pipe, log: String) throws -> (base: String, port: Int) {
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let r = text.range(of: "listening on "), let url = text[r.upperBound...].split(separator: " ").first.map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }),
              let colon = url.lastIndex(of: ":"), let port = Int(url[url.index(after: colon)...]) else {
            let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw NSError(domain: "serve", code: 1, userInfo: [NSLocalizedDescriptionKey: "no address in \(text.debugDescription); log: \(logged)"])
        }
        return (url, port)
    }
}
