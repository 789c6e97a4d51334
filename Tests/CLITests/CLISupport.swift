import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import TestSupport

/// Runs the real `haps-pipe` executable (built next to the test bundle, or $HAPS_PIPE_BIN).
enum CLI {
    static var binary: String {
        if let b = ProcessInfo.processInfo.environment["HAPS_PIPE_BIN"] { return b }
        // The test runner (…/debug/haps-pipePackageTests.xctest) sits beside the built tool.
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let bundle = Bundle(for: Marker.self).bundleURL
        let candidates = [runner.deletingLastPathComponent(), bundle, bundle.deletingLastPathComponent()]
            .map { $0.appendingPathComponent("haps-pipe").path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }
    final class Marker {}

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Starts the tool in `directory`; the caller waits.
    static func start(_ args: [String], in directory: String, environment: [String: String] = [:]) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env["TERM"] = "dumb"
        env.merge(environment) { _, given in given }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    static func run(_ args: [String], in directory: String, environment: [String: String] = [:]) throws -> Result {
        let (p, out, err) = try start(args, in: directory, environment: environment)
        return finish(p, out, err)
    }

    /// Starts the tool, presses Ctrl-C (SIGINT) once `ready()` holds (or after 20 s), and
    /// waits for it to end.
    static func interrupted(_ args: [String], in directory: String, when ready: () -> Bool) throws -> Result {
        let (p, out, err) = try start(args, in: directory)
        let deadline = Date().addingTimeInterval(20)
        while !ready() && Date() < deadline { usleep(20_000) }
        kill(p.processIdentifier, SIGINT)
        return finish(p, out, err)
    }

    static func finish(_ p: Process, _ out: Pipe, _ err: Pipe) -> Result {
        // Read both pipes concurrently so neither fills up.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}

func makeTempDirectory(_ test: XCTestCase) throws -> String {
    let dir = NSTemporaryDirectory() + "haps-cli-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

func writeFile(_ text: String, _ path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

func readFile(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

func lines(_ path: String) -> [String] { readFile(path).split(separator: "\n").map(String.init) }

/// A server `haps-pipe` starts (`serve`, `ui`) in `directory`, its address read from its first
/// line, its standard error in a log file beside; interrupted (Ctrl-C) by `stop()`.
final class CLIServer {
    let process = Process()
    let log: String
    var base = ""
    /// Its own cookies: what one test's server sets never reaches another's.
    let session = URLSession(configuration: .ephemeral)

    init(_ arguments: [String], in directory: String, environment: [String: String] = [:]) throws {
        log = directory + "/\(arguments.first ?? "server")-\(UUID().uuidString.prefix(6)).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, b in b }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        base = try ServerAddress.read(out, log: log).base
    }
    func stop() { if process.isRunning { process.interrupt(); process.waitUntilExit() } }
    deinit { if process.isRunning { process.terminate() } }

    /// GET `path`: the status and body.
    func get(_ path: String, headers: [String: String] = [:]) throws -> (status: Int, body: Data) {
        var request = URLRequest(url: URL(string: base + path)!)
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Int, Data)?
        nonisolated(unsafe) var failure: (any Error)?
        session.dataTask(with: request) { data, response, error in
            if let error { failure = error } else { result = ((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data()) }
            done.signal()
        }.resume()
        done.wait()
        if let failure { throw failure }
        return result!
    }
}
