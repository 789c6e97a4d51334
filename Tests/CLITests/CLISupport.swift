import Foundation
import XCTest

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
    static func start(_ args: [String], in directory: String) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env["TERM"] = "dumb"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    static func run(_ args: [String], in directory: String) throws -> Result {
        let (p, out, err) = try start(args, in: directory)
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
