import Foundation
import XCTest
@testable import LLM
import JSON
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The torch worker's protocol, against the real worker (`engines/torch/worker.py`) run by the
/// tests' Python: the handshake says what the worker has and lacks (preflight), tensors cross
/// byte for byte both ways, and every failure (an op the worker refuses, a worker that dies, a
/// protocol of another version, a Python that is not there) is an error naming what and where.
final class TorchWorkerTests: XCTestCase {
    static let script = Repository.root + "/engines/torch/worker.py"

    func worker(_ environment: [String: String] = [:]) throws -> TorchWorker { try Self.makeWorker(environment) }

    static func makeWorker(_ environment: [String: String] = [:]) throws -> TorchWorker {
        guard let python = Python.interpreter else { throw XCTSkip("no Python for the torch worker") }
        let log = NSTemporaryDirectory() + "torch-worker-\(UUID().uuidString).log"
        return try TorchWorker(python: python, script: TorchWorkerTests.script, log: log, environment: environment)
    }

    func testTheHandshakeSaysWhatTheWorkerHasAndLacks() throws {
        let w = try worker()
        XCTAssertEqual(w.hello.protocolVersion, TorchWorker.protocolVersion)
        XCTAssertFalse(w.hello.python.isEmpty)
        if w.hello.torch == nil {
            XCTAssertTrue(w.hello.missing.contains("torch"))
            let problems = w.preflight(needsCUDA: true)
            XCTAssertEqual(problems.count, 1, "\(problems)")
            XCTAssertTrue(problems[0].contains("lacks torch") && problems[0].contains("scripts/setup-gpu.sh") && problems[0].contains("HAPS_TORCH_PYTHON"),
                          problems[0])
        } else {
            XCTAssertFalse(w.hello.missing.contains("torch"))
            if w.hello.devices.isEmpty { XCTAssertTrue(w.preflight(needsCUDA: true).contains { $0.contains("sees no CUDA device") }) }
        }
        w.stop()
        XCTAssertNotEqual(kill(w.pid, 0), 0, "the worker exits when stopped")
    }

    /// Tensors cross byte for byte: special floats, negative 64-bit integers, and a tensor of
    /// 16 MB (more than any pipe buffer) in one frame.
    func testTensorsCrossByteForByte() throws {
        let w = try worker()
        let floats: [Float] = [0, -0.0, 1, -1.5, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 3.14159]
        let ints: [Int64] = [0, -1, .min, .max, 1 << 40]
        let big = (0..<(4 << 20)).map { Float($0) * 0.5 }
        let sent = [TorchWorker.NamedTensor("f", .float32(floats), shape: [3, 3]), TorchWorker.NamedTensor("i", .int64(ints), shape: [5]),
                    TorchWorker.NamedTensor("big", .float32(big), shape: [4, 1 << 20])]
        let (_, back) = try w.call("echo", tensors: sent)
        XCTAssertEqual(back.map(\.name), ["f", "i", "big"])
        XCTAssertEqual(back.map(\.shape), sent.map(\.shape))
        guard case .float32(let f) = back[0].payload, case .int64(let i) = back[1].payload, case .float32(let b) = back[2].payload else {
            return XCTFail("dtypes changed: \(back.map(\.payload))")
        }
        XCTAssertEqual(f.map(\.bitPattern), floats.map(\.bitPattern))
        XCTAssertEqual(i, ints)
        XCTAssertEqual(b, big)
        XCTAssertEqual(try w.call("echo", [("note", "no tensors")]).tensors, [], "a frame without tensors")
    }

    /// `haps-pipe serve` starts its worker from a pool thread that may end long before the
    /// process does: the worker must outlive that thread (Linux's PR_SET_PDEATHSIG, tied to the
    /// thread, killed it: a served model then failed every request with "the torch worker was
    /// stopped").
    func testTheWorkerOutlivesTheThreadThatStartedIt() throws {
        final class Box: @unchecked Sendable { var worker: TorchWorker?; var error: (any Error)? }
        let box = Box(), started = DispatchSemaphore(value: 0)
        let thread = Thread {
            do { box.worker = try TorchWorkerTests.makeWorker() } catch { box.error = error }
            started.signal()
        }
        thread.start()
        started.wait()
        if let e = box.error { throw e }
        while !thread.isFinished { usleep(10_000) }
        usleep(1_500_000)  // the parent watch looks twice a second
        let w = try XCTUnwrap(box.worker)
        XCTAssertNoThrow(try w.call("echo"), "the worker is alive after the thread that started it ended")
        w.stop()
    }

    /// A worker whose parent is killed exits by itself, even when its input stays open (no end
    /// of input to read: another process holds the pipe), as a worker busy computing would.
    func testTheWorkerExitsWhenItsParentIsKilled() throws {
        guard let python = Python.interpreter else { throw XCTSkip("no Python for the torch worker") }
        let parent = """
        import os, signal, subprocess, sys
        r, w = os.pipe()
        worker = subprocess.Popen([sys.executable, sys.argv[1]], stdin=r, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        holder = subprocess.Popen(["sleep", "30"], pass_fds=(w,), stdout=subprocess.DEVNULL)  # keeps the worker's input open
        worker.stdout.read(4)  # the hello's length: the worker is serving
        print(worker.pid, holder.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", parent, TorchWorkerTests.script]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        process.waitUntilExit()
        let pids = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard pids.count == 2 else { return XCTFail("the parent script printed no pids") }
        defer { kill(pids[1], SIGKILL) }
        func alive(_ pid: Int32) -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
            return !stat.split(separator: ")").last!.trimmingCharacters(in: .whitespaces).hasPrefix("Z")  // a zombie has exited
        }
        var waited = 0
        while alive(pids[0]) && waited < 100 { usleep(50_000); waited += 1 }
        XCTAssertFalse(alive(pids[0]), "the worker exits within 5 s of its parent's death")
    }

    func testFailuresNameWhatAndWhere() throws {
        // An op the worker refuses: its error comes back, and the worker goes on.
        let w = try worker()
        XCTAssertThrowsError(try w.call("nope")) { XCTAssertTrue("\($0)".contains("the torch worker failed 'nope': KeyError: \"unknown op 'nope'\""), "\($0)") }
        XCTAssertNoThrow(try w.call("echo"))
        // A worker that dies: the call names the op, then every later call says it stopped.
        kill(w.pid, SIGKILL)
        XCTAssertThrowsError(try w.call("echo")) { XCTAssertTrue("\($0)".contains("stopped answering during 'echo'"), "\($0)") }
        XCTAssertThrowsError(try w.call("echo")) { XCTAssertTrue("\($0)".contains("was stopped"), "\($0)") }
        // A worker of another protocol version is refused at start.
        XCTAssertThrowsError(try worker(["HAPS_TORCH_WORKER_PROTOCOL": "99"])) {
            XCTAssertTrue("\($0)".contains("speaks protocol 99, this haps-pipe \(TorchWorker.protocolVersion)"), "\($0)")
        }
        // A Python that is not there, and a worker script that is not there.
        let log = NSTemporaryDirectory() + "torch-worker-\(UUID().uuidString).log"
        XCTAssertThrowsError(try TorchWorker(python: "/nonexistent/python3", script: TorchWorkerTests.script, log: log)) {
            XCTAssertTrue("\($0)".contains("cannot start the torch worker with '/nonexistent/python3'") && "\($0)".contains("HAPS_TORCH_PYTHON"), "\($0)")
        }
        XCTAssertThrowsError(try TorchWorker(python: "python3", script: "/nonexistent/worker.py", log: log)) {
            XCTAssertTrue("\($0)".contains("/nonexistent/worker.py is not there"), "\($0)")
        }
    }
}
