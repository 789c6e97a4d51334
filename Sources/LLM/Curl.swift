public import NN

/// libcurl, loaded on first use (the HTTP clients of the backends are built on it).
public final class Curl: @unchecked Sendable {
    public let library: DynamicLibrary
    private let versionFunction: @convention(c) () -> UnsafeMutablePointer<CChar>?

    nonisolated(unsafe) private static var instance: Curl?
    private static let lock = SpinLock()

    /// The process-wide libcurl (loaded at the first call).
    public static func shared() throws(DynamicLibrary.LoadError) -> Curl {
        lock.lock(); defer { lock.unlock() }
        if let instance { return instance }
        let c = try Curl()
        instance = c
        return c
    }

    private init() throws(DynamicLibrary.LoadError) {
        library = try DynamicLibrary(names: ["libcurl.so.4", "libcurl.so"], package: "libcurl4-openssl-dev")
        versionFunction = try library.symbol("curl_version", as: (@convention(c) () -> UnsafeMutablePointer<CChar>?).self)
    }

    /// libcurl's version line, e.g. "libcurl/7.88.1 OpenSSL/3.0.19 zlib/1.2.13 ...".
    public var version: String { versionFunction().map { String(cString: $0) } ?? "" }
}
