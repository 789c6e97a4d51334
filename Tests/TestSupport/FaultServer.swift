import Foundation

/// The loopback HTTP server of the client tests (Tests/TestSupport/fault_server.py): OpenAI chat
/// completions, the reference's model and retriever protocols, and faults (429s, 5xx, slow and
/// torn replies) chosen by the requested model name; `/count/NAME` says how often NAME was asked.
public final class FaultServer: @unchecked Sendable {
    public let port: Int
    let program: PythonProcess
    public var base: String { "http://127.0.0.1:\(port)" }

    public init(file: StaticString = #filePath, line: UInt = #line) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("fault_server.py").path
        program = try Python.start(script: script, file: file, line: line)
        let line = try program.readLine()
        guard let port = Int(line) else { throw PythonError("fault_server.py printed \(line.debugDescription), not a port") }
        self.port = port
    }

    public func stop() { program.stop() }
}
