#if canImport(Glibc)
import Glibc
#endif

/// A shared library opened with `dlopen` on first use, and its symbols.
///
///     let lib = try DynamicLibrary(names: ["libopenblas.so.0"], package: "libopenblas-dev")
///     let f = try lib.symbol("openblas_get_num_threads", as: (@convention(c) () -> Int32).self)
///
/// Heavy libraries (OpenBLAS, libcurl) are reached this way so that commands which never use
/// them start fast; the system-library targets still provide their headers and types.
public final class DynamicLibrary: @unchecked Sendable {
    public let path: String
    private let handle: UnsafeMutableRawPointer

    /// A library that could not be loaded, with the Debian package that provides it.
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public var names: [String]
        public var package: String
        public var reason: String
        public var description: String {
            "cannot load \(names.joined(separator: " or ")): \(reason)\nHINT: install it with `apt-get install \(package)` (scripts/install-deps.sh does)"
        }
    }

    /// Tries each name in turn (sonames first, so that no -dev package is needed at run time).
    public init(names: [String], package: String) throws(LoadError) {
        var last = "not found"
        for n in names {
            if let h = dlopen(n, RTLD_NOW | RTLD_LOCAL) {
                handle = h
                path = n
                return
            }
            if let e = dlerror() { last = String(cString: e) }
        }
        throw LoadError(names: names, package: package, reason: last)
    }

    /// The symbol `name`, cast to the C function type `type`.
    public func symbol<T>(_ name: String, as type: T.Type) throws(LoadError) -> T {
        guard let p = dlsym(handle, name) else {
            throw LoadError(names: [path], package: "", reason: "it has no symbol \(name)")
        }
        return unsafeBitCast(p, to: type)
    }
}

/// A value built once, on first use, by a loader that may fail (and is retried until it works):
/// how the process-wide wrappers of dynamically loaded libraries are kept.
public final class LoadedOnce<T: AnyObject>: @unchecked Sendable {
    private let load: () throws(DynamicLibrary.LoadError) -> T
    private var value: T?
    private let lock = Lock()

    public init(_ load: @escaping () throws(DynamicLibrary.LoadError) -> T) { self.load = load }

    public func get() throws(DynamicLibrary.LoadError) -> T {
        lock.lock(); defer { lock.unlock() }
        if let value { return value }
        let v = try load()
        value = v
        return v
    }
}

/// A flag set once (say, when a library has been loaded), readable without causing the load.
public final class OnceFlag: @unchecked Sendable {
    private let lock = Lock()
    private var value = false
    public init() {}
    public func set() { lock.withLock { value = true } }
    public var isSet: Bool { lock.withLock { value } }
}
