public import NN

/// libcurl, loaded on first use (the HTTP clients of the backends are built on it).
public final class Curl: @unchecked Sendable {
    public let library: DynamicLibrary
    private let versionFunction: @convention(c) () -> UnsafeMutablePointer<CChar>?

    private static let instance = LoadedOnce { () throws(DynamicLibrary.LoadError) in try Curl() }

    /// The process-wide libcurl (loaded at the first call).
    public static func shared() throws(DynamicLibrary.LoadError) -> Curl { try instance.get() }

    private init() throws(DynamicLibrary.LoadError) {
        library = try DynamicLibrary(names: ["libcurl.so.4", "libcurl.so"], package: "libcurl4-openssl-dev")
        versionFunction = try library.symbol("curl_version", as: (@convention(c) () -> UnsafeMutablePointer<CChar>?).self)
    }

    /// libcurl's version line, e.g. "libcurl/7.88.1 OpenSSL/3.0.19 zlib/1.2.13 ...".
    public var version: String { versionFunction().map { String(cString: $0) } ?? "" }
}
