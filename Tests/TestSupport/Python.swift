import Foundation
import XCTest

/// The repository the tests are built from (this file is Tests/TestSupport/Python.swift).
public enum Repository {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
}

/// Python as the tests use it: an oracle (CPython's `random`, `re`, `hashlib`, numpy, gguf, the
/// official openai client), a harness (a parent that kills a driver) or a loopback server.
///
/// The interpreter is `$HAPS_TEST_PYTHON`, else the one scripts/test.sh makes
/// (`.build/test-venv/bin/python`, with openai, numpy, gguf and playwright), else `python3` on `PATH`. A test
/// names the modules it needs beyond the standard library (`requiring: ["numpy"]`): where the
/// interpreter lacks one (or there is none) the test is skipped, saying what is missing, except
/// for the modules listed in `$HAPS_REQUIRE_PYTHON_MODULES` (scripts/test.sh lists those it
/// installed), whose absence fails the test instead.
///
///     let text = try Python.output("import sys; print(sys.argv[1])", arguments: ["x"])
///     let r = try Python.run(script: dir + "/make.py", arguments: [root], in: dir)   // r.status, r.stdout, r.stderr
///     let server = try Python.start(script: path)                                   // a program that keeps running
public enum Python {
    /// The interpreter's path; nil where there is none.
    public static let interpreter: String? = {
        let env = ProcessInfo.processInfo.environment
        if let given = env["HAPS_TEST_PYTHON"], !given.isEmpty { return given }
        let venv = Repository.root + "/.build/test-venv/bin/python"
        if FileManager.default.isExecutableFile(atPath: venv) { return venv }
        for dir in (env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = String(dir) + "/python3"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// Skips the calling test (XCTSkip) unless the interpreter exists and imports every one of
    /// `modules`; a module listed in `$HAPS_REQUIRE_PYTHON_MODULES` fails it instead.
    public static func require(_ modules: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let required = Set((ProcessInfo.processInfo.environment["HAPS_REQUIRE_PYTHON_MODULES"] ?? "")
            .split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init))
        guard let python = interpreter, FileManager.default.isExecutableFile(atPath: python) else {
            let why = (interpreter.map { "HAPS_TEST_PYTHON names \($0), which is not a program" } ?? "no Python: set HAPS_TEST_PYTHON or put python3 on PATH")
                + (modules.isEmpty ? "" : " (this test needs the module\(modules.count == 1 ? "" : "s") \(modules.joined(separator: ", ")))")
            if !required.isEmpty { throw PythonError(why + "; HAPS_REQUIRE_PYTHON_MODULES makes this a failure") }
            throw XCTSkip(why, file: file, line: line)
        }
        let missing = try ModuleCache.shared.missing(modules, python: python)
        guard !missing.isEmpty else { return }
        let why = "\(python) lacks the Python module\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) that this test needs "
            + "(scripts/test.sh installs openai, numpy, gguf and playwright into .build/test-venv; HAPS_TEST_PYTHON names another interpreter)"
        if missing.contains(where: required.contains) { throw PythonError(why + "; HAPS_REQUIRE_PYTHON_MODULES makes this a failure") }
        throw XCTSkip(why, file: file, line: line)
    }

    /// Runs `code` (`python -c code arguments...`) to its end, with `stdin` as its standard input
    /// (none: empty) in `directory`; its exit status is in the result, for the caller to judge.
    public static func run(_ code: String, arguments: [String] = [], stdin: Data? = nil, requiring modules: [String] = [],
                           in directory: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> PythonResult {
        try require(modules, file: file, line: line)
        return try execute(["-c", code] + arguments, what: describe(code: code), stdin: stdin, in: directory)
    }

    /// Runs the script at `path` (`python path arguments...`), as `run(_:)` does code.
    public static func run(script path: String, arguments: [String] = [], stdin: Data? = nil, requiring modules: [String] = [],
                           in directory: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> PythonResult {
        try require(modules, file: file, line: line)
        return try execute([path] + arguments, what: path, stdin: stdin, in: directory)
    }

    /// The standard output of `code`; an exit status other than 0 is a thrown `PythonError` that
    /// carries the program's standard error.
    public static func output(_ code: String, arguments: [String] = [], stdin: Data? = nil, requiring modules: [String] = [],
                              in directory: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try run(code, arguments: arguments, stdin: stdin, requiring: modules, in: directory, file: file, line: line).checked().stdout
    }

    /// The standard output of the script at `path`, as `output(_:)`.
    public static func output(script path: String, arguments: [String] = [], stdin: Data? = nil, requiring modules: [String] = [],
                              in directory: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try run(script: path, arguments: arguments, stdin: stdin, requiring: modules, in: directory, file: file, line: line).checked().stdout
    }

    /// Starts `code` as a program that keeps running (a server): the caller reads its standard
    /// output (`readLine()`) and stops it. Its standard input stays open while the returned
    /// object lives, so a program that waits on it ends with the test process.
    public static func start(_ code: String, arguments: [String] = [], requiring modules: [String] = [],
                             file: StaticString = #filePath, line: UInt = #line) throws -> PythonProcess {
        try require(modules, file: file, line: line)
        return try PythonProcess(interpreter: interpreter!, arguments: ["-c", code] + arguments, what: describe(code: code))
    }

    /// Starts the script at `path`, as `start(_:)`.
    public static func start(script path: String, arguments: [String] = [], requiring modules: [String] = [],
                             file: StaticString = #filePath, line: UInt = #line) throws -> PythonProcess {
        try require(modules, file: file, line: line)
        return try PythonProcess(interpreter: interpreter!, arguments: [path] + arguments, what: path)
    }

    /// The first line of `code`, cut short: how a failure names what ran.
    static func describe(code: String) -> String {
        let first = code.split(separator: "\n").first { !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? ""
        let line = first.trimmingCharacters(in: .whitespaces)
        return "-c '" + (line.count > 72 ? line.prefix(72) + "…" : line) + (code.contains("\n") ? " …'" : "'")
    }

    static func execute(_ arguments: [String], what: String, stdin: Data?, in directory: String?) throws -> PythonResult {
        let python = interpreter!
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let input = stdin.map { _ in Pipe() }
        if let input { p.standardInput = input } else { p.standardInput = FileHandle.nullDevice }
        try p.run()
        // Standard input is written, and standard error read, on threads of their own, so that
        // no pipe fills up while another is waited on.
        final class Box: @unchecked Sendable { var data = Data() }
        let errors = Box()
        let group = DispatchGroup()
        group.enter()
        Thread.detachNewThread { errors.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        if let input, let stdin {
            group.enter()
            Thread.detachNewThread {
                try? input.fileHandleForWriting.write(contentsOf: stdin)
                try? input.fileHandleForWriting.close()
                group.leave()
            }
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return PythonResult(what: "\(python) \(what)", status: p.terminationStatus, stdoutData: output,
                            stderr: String(decoding: errors.data, as: UTF8.self))
    }

    /// Which modules each interpreter imports, asked once per module.
    final class ModuleCache: @unchecked Sendable {
        static let shared = ModuleCache()
        let lock = NSLock()
        var importable: [String: Bool] = [:]

        func missing(_ modules: [String], python: String) throws -> [String] {
            let unknown = lock.withLock { modules.filter { importable[$0] == nil } }
            if !unknown.isEmpty {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: python)
                p.arguments = ["-c", """
                    import importlib, sys
                    for m in sys.argv[1:]:
                        try:
                            importlib.import_module(m)
                        except Exception:
                            print(m)
                    """] + unknown
                let out = Pipe()
                p.standardOutput = out
                p.standardError = FileHandle.nullDevice
                p.standardInput = FileHandle.nullDevice
                do { try p.run() } catch { throw XCTSkip("cannot run \(python): \(error)") }
                let absent = Set(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").map(String.init))
                p.waitUntilExit()
                lock.withLock { for m in unknown { importable[m] = p.terminationStatus == 0 && !absent.contains(m) } }
            }
            return lock.withLock { modules.filter { importable[$0] != true } }
        }
    }
}

/// What a Python program printed and how it ended.
public struct PythonResult: Sendable {
    /// The interpreter and what it ran, for messages.
    public var what: String
    public var status: Int32
    public var stdoutData: Data
    public var stderr: String
    public var stdout: String { String(decoding: stdoutData, as: UTF8.self) }

    /// This result, or a thrown `PythonError` naming the program, its status and its standard error.
    @discardableResult
    public func checked() throws -> PythonResult {
        guard status == 0 else { throw PythonError("\(what) exited with status \(status); its standard error:\n\(stderr)") }
        return self
    }
}

/// A Python program that failed, or a Python that a test requires and is missing.
public struct PythonError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A Python program that keeps running (`Python.start`): its standard output is read line by
/// line, its standard error goes to a file that a failure quotes.
public final class PythonProcess: @unchecked Sendable {
    public let process = Process()
    let what: String
    let output = Pipe()
    let input = Pipe()
    let errorLog = NSTemporaryDirectory() + "python-\(UUID().uuidString).log"
    let errorHandle: FileHandle?

    init(interpreter: String, arguments: [String], what: String) throws {
        self.what = "\(interpreter) \(what)"
        process.executableURL = URL(fileURLWithPath: interpreter)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: errorLog, contents: nil)
        process.standardOutput = output
        process.standardInput = input
        errorHandle = FileHandle(forWritingAtPath: errorLog)
        process.standardError = errorHandle
        try process.run()
    }

    /// What the program wrote to its standard error so far.
    public var stderr: String { (try? String(contentsOfFile: errorLog, encoding: .utf8)) ?? "" }

    /// The next line of its standard output, without the newline; a `PythonError` quoting its
    /// standard error if it ends first.
    public func readLine() throws -> String {
        var line = Data()
        while true {
            let b = output.fileHandleForReading.readData(ofLength: 1)
            if b.isEmpty {
                process.waitUntilExit()
                throw PythonError("\(what) ended (status \(process.terminationStatus)) before printing a line; its standard error:\n\(stderr)")
            }
            if b == Data("\n".utf8) { return String(decoding: line, as: UTF8.self) }
            line += b
        }
    }

    /// Ends the program (SIGTERM) and waits for it.
    public func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? errorHandle?.close()
        try? FileManager.default.removeItem(atPath: errorLog)
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(atPath: errorLog)
    }
}

/// The Python that runs the torch engine's worker in tests: `HAPS_TORCH_PYTHON` (`.ci/run` makes
/// one with CPU torch), else the test skips saying what to set; with `torch` listed in
/// `HAPS_REQUIRE_PYTHON_MODULES` it fails instead.
public enum TorchPython {
    public static func require(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let env = ProcessInfo.processInfo.environment
        if let python = env["HAPS_TORCH_PYTHON"], !python.isEmpty { return python }
        let why = "HAPS_TORCH_PYTHON is not set: the torch engine's tests need a Python with torch and transformers (scripts/setup-gpu.sh, or .ci/run)"
        let required = (env["HAPS_REQUIRE_PYTHON_MODULES"] ?? "").split(whereSeparator: { $0 == " " || $0 == "," })
        if required.contains("torch") { throw PythonError(why + "; HAPS_REQUIRE_PYTHON_MODULES makes this a failure") }
        throw XCTSkip(why, file: file, line: line)
    }

    /// The worker program in this checkout.
    public static let worker = Repository.root + "/engines/torch/worker.py"
}
