#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Runs an external program in its own process group, with output to a log file, and
/// stops the whole group (SIGTERM, then SIGKILL after a grace period) on cancellation.
///
/// The group never outlives its driver: a watchdog process (a shell reading a pipe whose
/// only writer is this process) kills it when the driver dies, even by `kill -9`, and the
/// group's id is recorded in `groupRecord`, so that whoever resumes the stage can stop a
/// survivor (`stopRecordedGroups`) before it touches the stage's directories. When the
/// program exits, what it left running in its group is stopped too.
public enum Subprocess {
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addChdir: AddChdir? = {
        guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(p, to: AddChdir.self)
    }()

    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    /// pipe2(2), which Swift does not import: a pipe made close-on-exec atomically, so that no
    /// program started by another thread meanwhile inherits it.
    private static let pipe2: Pipe2? = {
        guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pipe2") else { return nil }
        return unsafeBitCast(p, to: Pipe2.self)
    }()

    public struct Result: Sendable {
        public var exitCode: Int32
        /// Set when the program was killed by a signal.
        public var signal: Int32?
    }

    /// Output and errors go to `logPath`; with `stdoutPath`, standard output goes there instead.
    /// `groupRecord`: a file to which the program's process group is appended (see
    /// `stopRecordedGroups`).
    public static func run(arguments: [String], environment: [String: String], directory: String, logPath: String,
                           stdoutPath: String? = nil, groupRecord: String? = nil, cancellation: CancellationToken,
                           graceSeconds: Double = 5) throws -> Result {
        precondition(!arguments.isEmpty, "Subprocess.run needs a program")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let stdoutPath {
            posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setpgroup(&attr, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT); sigaddset(&defaults, SIGTERM); sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var empty = sigset_t(); sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        // The child's working directory: glibc's posix_spawn chdir action (2.29+, a GNU extension
        // that Swift does not import, so looked up at run time), else through a shell.
        var full = arguments
        if directory != FileManager.default.currentDirectoryPath {
            if let addChdir = Subprocess.addChdir {
                _ = directory.withCString { addChdir(&actions, $0) }
            } else {
                full = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + arguments
            }
        }
        let argv = full.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }

        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, full[0], &actions, &attr, argv, envp)
        if rc != 0 {
            throw FileError(path: arguments[0], operation: "start program", errno: rc)
        }
        let child = pid
        if let groupRecord { recordGroup(child, in: groupRecord) }
        let watchdog = Watchdog(group: child)
        cancellation.onCancel {
            kill(-child, SIGTERM)
            ControlEvents.queue.asyncAfter(deadline: .now() + graceSeconds) { kill(-child, SIGKILL) }
        }
        // Wait for the program without reaping it (so that its id cannot be reused), stop what
        // it left in its group, then reap it.
        var info = siginfo_t()
        while waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT) < 0 {
            if errno != EINTR { break }
        }
        kill(-child, SIGKILL)
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 {
            if errno != EINTR { watchdog.stop(); throw FileError(path: arguments[0], operation: "wait for", errno: errno) }
        }
        watchdog.stop()
        // WIFEXITED / WEXITSTATUS / WTERMSIG by hand (macros are not imported).
        let termSig = status & 0x7F
        if termSig == 0 { return Result(exitCode: (status >> 8) & 0xFF, signal: nil) }
        return Result(exitCode: 128 + termSig, signal: termSig)
    }

    /// A shell in a group of its own that kills process group `group` when the pipe it reads
    /// reaches its end: when this process closes the pipe's only writing end, or dies.
    private struct Watchdog {
        var pid: pid_t = 0
        var writer: Int32 = -1

        init(group: pid_t) {
            var fds: [Int32] = [0, 0]
            guard let pipe2 = Subprocess.pipe2, pipe2(&fds, O_CLOEXEC) == 0 else { return }  // close-on-exec: no program inherits the writing end
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            var attr = posix_spawnattr_t()
            posix_spawnattr_init(&attr)
            defer { posix_spawnattr_destroy(&attr) }
            posix_spawnattr_setpgroup(&attr, 0)  // not in the terminal's group: a Ctrl-C leaves it to the driver
            posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
            let args = ["/bin/sh", "-c", "read line; kill -9 -\"$0\"", String(group)]
            let argv = args.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            let rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, environ)
            close(fds[0])
            if rc != 0 { close(fds[1]); pid = 0; return }
            writer = fds[1]
        }

        /// The program is done and its group stopped: end the watchdog without letting it act.
        func stop() {
            guard pid > 0 else { return }
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            close(writer)
        }
    }

    // MARK: Survivors of an earlier driver

    /// Appends `group` with its leader's start time (so that a recycled id is never mistaken for it).
    static func recordGroup(_ group: pid_t, in path: String) {
        let line = "\(group) \(startTime(of: group) ?? "?")\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = try? FileIO.writeAll(fd, Array(line.utf8), path: path)
        fsync(fd)
    }

    /// Stops every process group recorded in `path` by an earlier run of a stage that may
    /// still be running (its driver was killed), waits until they are gone, and removes the
    /// record. A group whose leader's id now belongs to a different process (same id, other
    /// start time) is not ours and is left alone. Returns how many groups were stopped.
    @discardableResult
    public static func stopRecordedGroups(_ path: String, timeout: Double = 10) -> Int {
        guard let text = try? FileIO.read(path) else { return 0 }
        var stopped = 0
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard let group = parts.first.flatMap({ pid_t($0) }), group > 1 else { continue }
            let recorded = parts.count > 1 ? String(parts[1]) : "?"
            if let now = startTime(of: group), recorded != "?", now != recorded { continue }  // a recycled id
            guard hasLiveMembers(group) else { continue }
            kill(-group, SIGKILL)
            stopped += 1
            let deadline = Date().addingTimeInterval(timeout)
            while hasLiveMembers(group) && Date() < deadline { usleep(10_000) }
        }
        unlink(path)
        return stopped
    }

    /// Whether process group `group` has a member that is not a zombie (a zombie waits for
    /// its reaper, which a container's init may never be; it writes nothing). Without /proc,
    /// whether the group has any member.
    static func hasLiveMembers(_ group: pid_t) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return kill(-group, 0) == 0 }
        for name in names {
            guard let pid = pid_t(name), let bytes = try? FileIO.read("/proc/\(pid)/stat") else { continue }
            let text = String(decoding: bytes, as: UTF8.self)
            guard let close = text.lastIndex(of: ")") else { continue }
            let fields = text[text.index(after: close)...].split(separator: " ")  // state, ppid, pgrp, ...
            if fields.count > 2, fields[2] == Substring(String(group)), fields[0] != "Z" { return true }
        }
        return false
    }

    /// Field 22 of /proc/PID/stat (start time in clock ticks since boot); nil when there is no
    /// such process (or no /proc).
    static func startTime(of pid: pid_t) -> String? {
        guard let bytes = try? FileIO.read("/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }  // the command name may hold spaces
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }
}
