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
public enum Subprocess {
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addChdir: AddChdir? = {
        guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(p, to: AddChdir.self)
    }()

    public struct Result: Sendable {
        public var exitCode: Int32
        /// Set when the program was killed by a signal.
        public var signal: Int32?
    }

    /// Output and errors go to `logPath`; with `stdoutPath`, standard output goes there instead.
    public static func run(arguments: [String], environment: [String: String], directory: String, logPath: String,
                           stdoutPath: String? = nil, cancellation: CancellationToken, graceSeconds: Double = 5) throws -> Result {
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
        cancellation.onCancel {
            kill(-child, SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + graceSeconds) { kill(-child, SIGKILL) }
        }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 {
            if errno != EINTR { throw FileError(path: arguments[0], operation: "wait for", errno: errno) }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG by hand (macros are not imported).
        let termSig = status & 0x7F
        if termSig == 0 { return Result(exitCode: (status >> 8) & 0xFF, signal: nil) }
        return Result(exitCode: 128 + termSig, signal: termSig)
    }
}
