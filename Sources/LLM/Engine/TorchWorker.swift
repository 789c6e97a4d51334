import JSON
import NN
#if canImport(Glibc)
import Glibc
#endif

/// A running torch engine worker (`engines/torch/worker.py`) and the versioned protocol to it
/// (docs/engine.md, "The torch worker"): frames of a little-endian UInt32 length, a JSON header
/// and the raw bytes of the tensors the header lists, over the worker's standard input and
/// output; its standard error goes to a log whose end every error quotes. The worker speaks
/// first (`hello`: versions, GPUs, what it lacks); each request then gets one reply. Calls are
/// serialised. The worker dies with this process (it reads the end of its input, and Linux
/// kills it when its parent dies).
///
///     let w = try TorchWorker(python: "python3", script: "engines/torch/worker.py", log: "worker.log")
///     w.hello.missing          // ["torch"] where torch is not installed
///     let (reply, tensors) = try w.call("echo", tensors: [("x", .float32([1, 2]), [2])])
public final class TorchWorker: @unchecked Sendable {
    /// The protocol this client speaks; a worker of another version is refused at start.
    public static let protocolVersion = 1

    /// A tensor crossing the protocol.
    public enum Payload: Sendable, Equatable {
        case float32([Float])
        case int64([Int64])

        var dtype: String { switch self { case .float32: "float32"; case .int64: "int64" } }
        var bytes: [UInt8] {
            switch self {
            case .float32(let v): v.withUnsafeBytes { Array($0) }
            case .int64(let v): v.map(\.littleEndian).withUnsafeBytes { Array($0) }
            }
        }
    }

    /// A named tensor: its values and shape.
    public struct NamedTensor: Sendable, Equatable {
        public var name: String
        public var payload: Payload
        public var shape: [Int]
        public init(_ name: String, _ payload: Payload, shape: [Int]) { self.name = name; self.payload = payload; self.shape = shape }
    }

    /// What the worker said of itself.
    public struct Hello: Sendable, Equatable {
        public var protocolVersion: Int
        public var python: String
        public var torch: String?
        public var transformers: String?
        public var cuda: String?
        /// "NAME (N GiB)" per GPU.
        public var devices: [String]
        /// Packages the worker could not import.
        public var missing: [String]
    }

    /// Why the worker could not be used, with what it was doing and the end of its log.
    public struct WorkerError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    public let hello: Hello
    public let python: String
    public let logPath: String
    let pid: pid_t
    private let input: Int32, output: Int32
    private let lock = Lock()
    private var nextID = 0
    private var closed = false

    /// Starts `python script` with its standard error appended to `log`, and reads its hello.
    public init(python: String, script: String, log: String, environment: [String: String] = [:]) throws {
        self.python = python; logPath = log
        guard access(script, R_OK) == 0 else { throw WorkerError(message: "the torch worker \(script) is not there (it ships in the repository's engines/torch/)") }
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw WorkerError(message: "cannot make the worker's pipes: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        for fd in [toChild[0], toChild[1], fromChild[0], fromChild[1]] { posix_spawn_file_actions_addclose(&actions, fd) }
        var env = ProcessEnvironment.current
        for (k, v) in environment { env[k] = v }
        env["PYTHONUNBUFFERED"] = "1"
        let argv = [python, script]
        var child: pid_t = 0
        let status = withCStrings(argv) { args in
            withCStrings(env.map { "\($0.key)=\($0.value)" }) { envp in posix_spawnp(&child, python, &actions, nil, args, envp) }
        }
        close(toChild[0]); close(fromChild[1])
        guard status == 0 else {
            close(toChild[1]); close(fromChild[0])
            throw WorkerError(message: "cannot start the torch worker with '\(python)' (\(String(cString: strerror(status)))): set HAPS_TORCH_PYTHON to a Python with torch and transformers (scripts/setup-gpu.sh makes one)")
        }
        pid = child; input = toChild[1]; output = fromChild[0]
        signal(SIGPIPE, SIG_IGN)  // a dead worker is an error from write(2), not the end of this process
        let header: JSONValue
        do { header = try TorchWorker.receive(output).header } catch {
            kill(child, SIGKILL); var s: Int32 = 0; waitpid(child, &s, 0)
            close(input); close(output)
            throw WorkerError(message: "the torch worker (\(python) \(script)) did not start: \(error)" + TorchWorker.logTail(log))
        }
        hello = Hello(protocolVersion: header["protocol"]?.intValue ?? 0, python: header["python"]?.stringValue ?? "?",
                      torch: header["torch"]?.stringValue, transformers: header["transformers"]?.stringValue, cuda: header["cuda"]?.stringValue,
                      devices: (header["devices"]?.arrayValue ?? []).map { d in
                          "\(d["name"]?.stringValue ?? "?") (\(Int(((d["memory"]?.doubleValue ?? 0) / Double(1 << 30)).rounded())) GiB)"
                      },
                      missing: (header["missing"]?.arrayValue ?? []).compactMap(\.stringValue))
        guard hello.protocolVersion == TorchWorker.protocolVersion else {
            stop()
            throw WorkerError(message: "the torch worker \(script) speaks protocol \(hello.protocolVersion), this haps-pipe \(TorchWorker.protocolVersion): use the worker that ships with this haps-pipe")
        }
    }

    deinit { stop() }

    /// What must be fixed before the worker can run models, in words (empty: nothing).
    public func preflight(needsCUDA: Bool) -> [String] {
        var problems: [String] = []
        if !hello.missing.isEmpty {
            problems.append("\(python) (Python \(hello.python)) lacks \(hello.missing.joined(separator: " and ")): run scripts/setup-gpu.sh and set HAPS_TORCH_PYTHON to its venv's python")
        }
        if needsCUDA && hello.torch != nil && hello.devices.isEmpty {
            problems.append("\(python)'s torch \(hello.torch!) sees no CUDA device" + (hello.cuda == nil ? " (it is a CPU-only build)" : ""))
        }
        return problems
    }

    /// One request and its reply: `fields` join the header, `tensors` follow it. A reply that
    /// says the op failed, a dead worker or a broken frame is a `WorkerError` naming the op.
    public func call(_ op: String, _ fields: [(String, JSONValue)] = [], tensors: [NamedTensor] = []) throws -> (header: JSONValue, tensors: [NamedTensor]) {
        try lock.withLock {
            guard !closed else { throw WorkerError(message: "the torch worker was stopped; '\(op)' cannot run") }
            nextID += 1
            let id = nextID
            let described: [JSONValue] = tensors.map { ["name": .string($0.name), "dtype": .string($0.payload.dtype), "shape": .array($0.shape.map { .number(Double($0)) })] }
            var header: [(String, JSONValue)] = [("id", .number(Double(id))), ("op", .string(op))] + fields
            if !tensors.isEmpty { header.append(("tensors", .array(described))) }
            do {
                try TorchWorker.send(input, header: JSONValue.object(header).canonical, blobs: tensors.map(\.payload.bytes))
                let reply = try TorchWorker.receive(output)
                guard reply.header["id"]?.intValue == id else { throw WorkerError(message: "a reply to another request (id \(reply.header["id"]?.canonical ?? "none"))") }
                guard reply.header["ok"]?.boolValue == true else {
                    let e = reply.header["error"]
                    throw WorkerError(message: "the torch worker failed '\(op)': \(e?["type"]?.stringValue ?? "error"): \(e?["message"]?.stringValue ?? "(no message)")")
                }
                return reply
            } catch let e as WorkerError where e.message.hasPrefix("the torch worker failed") {
                throw e
            } catch {
                closed = true
                throw WorkerError(message: "the torch worker (pid \(pid)) stopped answering during '\(op)': \(error)" + TorchWorker.logTail(logPath))
            }
        }
    }

    /// Asks the worker to exit, then makes sure it has (SIGKILL after 5 s).
    public func stop() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            _ = try? TorchWorker.send(input, header: #"{"id":0,"op":"shutdown"}"#, blobs: [])
            close(input)
            var status: Int32 = 0
            for _ in 0..<500 { if waitpid(pid, &status, WNOHANG) != 0 { close(output); return }; usleep(10_000) }
            kill(pid, SIGKILL); waitpid(pid, &status, 0)
            close(output)
        }
    }

    // MARK: Frames

    static func send(_ fd: Int32, header: String, blobs: [[UInt8]]) throws {
        let body = Array(header.utf8)
        var length = UInt32(body.count).littleEndian
        try writeAll(fd, withUnsafeBytes(of: &length) { Array($0) } + body)
        for b in blobs { try writeAll(fd, b) }
    }

    static func receive(_ fd: Int32) throws -> (header: JSONValue, tensors: [NamedTensor]) {
        let prefix = try readExactly(fd, 4)
        let n = Int(UInt32(prefix[0]) | UInt32(prefix[1]) << 8 | UInt32(prefix[2]) << 16 | UInt32(prefix[3]) << 24)
        guard n <= 1 << 30 else { throw WorkerError(message: "a frame header of \(n) bytes: not a worker speaking this protocol") }
        let header = try JSONParser.parse(bytes: try readExactly(fd, n))
        var tensors: [NamedTensor] = []
        for t in header["tensors"]?.arrayValue ?? [] {
            let shape = (t["shape"]?.arrayValue ?? []).compactMap(\.intValue), count = shape.reduce(1, *)
            let name = t["name"]?.stringValue ?? "?"
            switch t["dtype"]?.stringValue {
            case "float32":
                let bytes = try readExactly(fd, count * 4)
                tensors.append(NamedTensor(name, .float32(bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }), shape: shape))
            case "int64":
                let bytes = try readExactly(fd, count * 8)
                tensors.append(NamedTensor(name, .int64(bytes.withUnsafeBytes { $0.bindMemory(to: Int64.self).map { Int64(littleEndian: $0) } }), shape: shape))
            case let other:
                throw WorkerError(message: "tensor '\(name)' of dtype \(other ?? "none"), which this client does not read")
            }
        }
        return (header, tensors)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 { if errno == EINTR { continue }; throw WorkerError(message: "write: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    private static func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count), offset = 0
        while offset < count {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, count - offset) }
            if n < 0 { if errno == EINTR { continue }; throw WorkerError(message: "read: \(String(cString: strerror(errno)))") }
            if n == 0 { throw WorkerError(message: "the worker's output ended (it exited)") }
            offset += n
        }
        return out
    }

    /// The last lines of the worker's log, for an error message.
    static func logTail(_ path: String, lines: Int = 12) -> String {
        guard let f = fopen(path, "r") else { return "" }
        defer { fclose(f) }
        var text: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            text += buffer[0..<n]
            if text.count > 1 << 20 { text.removeFirst(text.count - (1 << 20)) }
        }
        let tail = String(decoding: text, as: UTF8.self).split(separator: "\n").suffix(lines)
        return tail.isEmpty ? "" : "\n  worker log (\(path)):\n    " + tail.joined(separator: "\n    ")
    }
}

/// This process's environment, as a dictionary.
enum ProcessEnvironment {
    static var current: [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}

/// Calls `body` with a NULL-terminated array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return body(pointers)
}

/// Where the torch worker program is: `HAPS_TORCH_WORKER`, else `engines/torch/worker.py` in
/// the checkout the running program was built in (found upwards from the executable), else
/// `share/haps-pipe/engines/torch/worker.py` beside an installed one.
public enum TorchWorkerLocation {
    public static let notFound = "the torch engine's worker (engines/torch/worker.py) was not found beside this haps-pipe: set HAPS_TORCH_WORKER to its path"

    public static func script() -> String? {
        func exists(_ p: String) -> Bool { access(p, R_OK) == 0 }
        if let s = getenv("HAPS_TORCH_WORKER").map({ String(cString: $0) }), !s.isEmpty { return exists(s) ? s : nil }
        guard let exe = realpath("/proc/self/exe", nil) else { return nil }
        var dir = String(cString: exe)
        free(exe)
        for _ in 0..<7 {
            guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { break }
            dir = String(dir[..<slash])
            for candidate in [dir + "/engines/torch/worker.py", dir + "/share/haps-pipe/engines/torch/worker.py"] where exists(candidate) {
                return candidate
            }
        }
        return nil
    }
}
