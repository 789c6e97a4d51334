import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Pipeline

/// `haps-pipe serve` hands over to `haps-pipe-serve`, installed beside this program: the HTTP
/// server's SwiftNIO stack then costs nothing to the other commands' start-up (docs/serve.md).
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a local model (OpenAI and haps protocols) and a retriever (/retrieve); see `haps-pipe serve --help`.",
        discussion: "Runs haps-pipe-serve from the same directory as haps-pipe with the same arguments.")

    @Argument(parsing: .captureForPassthrough, help: "Options of haps-pipe-serve (--model, --retriever, --port, ...).")
    var arguments: [String] = []

    /// The server program: beside this executable (resolved through symbolic links), else on PATH.
    static func serverPath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 {
            let me = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let candidate = Path.directory(me) + "/haps-pipe-serve"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/haps-pipe-serve"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    func run() throws { try Serve.exec(arguments) }

    /// Replaces this process with haps-pipe-serve and `arguments`.
    static func exec(_ arguments: [String]) throws -> Never {
        guard let server = Serve.serverPath() else {
            throw ErrorOutput.fail(NotFoundError("haps-pipe-serve is not installed beside haps-pipe nor on the PATH (scripts/setup.sh installs both)"))
        }
        let argv = [server] + arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        execv(server, &cArgs)
        throw ErrorOutput.fail(NotFoundError("cannot run \(server): \(String(cString: strerror(errno)))"))
    }
}

/// `haps-pipe ui` hands over to `haps-pipe-serve ui`, as `serve` does (docs/ui.md).
struct UI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "Look at the store's experiments, runs, results, evaluations and sweeps in a browser; see `haps-pipe ui --help`.",
        discussion: """
            Runs `haps-pipe-serve ui` from the same directory as haps-pipe with the same arguments.

            Examples:
              haps-pipe ui                        # the store ./artifacts on http://127.0.0.1:8300
              haps-pipe ui --store runs/artifacts --port 9000
            """)

    @Argument(parsing: .captureForPassthrough, help: "Options of `haps-pipe-serve ui` (--store, --port, --host, --api-key-env).")
    var arguments: [String] = []

    func run() throws { try Serve.exec(["ui"] + arguments) }
}
