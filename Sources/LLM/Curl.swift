public import CCurl
public import NN
#if canImport(Glibc)
import Glibc
#endif

/// libcurl, loaded on first use, with the functions the HTTP client needs.
public final class Curl: @unchecked Sendable {
    public let library: DynamicLibrary
    private let versionFunction: @convention(c) () -> UnsafeMutablePointer<CChar>?
    let easyInit: @convention(c) () -> UnsafeMutableRawPointer?
    let easyCleanup: @convention(c) (UnsafeMutableRawPointer?) -> Void
    let easyPerform: @convention(c) (UnsafeMutableRawPointer?) -> CURLcode
    let easyStrerror: @convention(c) (CURLcode) -> UnsafePointer<CChar>?
    let slistAppend: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> OpaquePointer?
    let slistFreeAll: @convention(c) (OpaquePointer?) -> Void
    let setopt: UnsafeMutableRawPointer
    let getinfo: UnsafeMutableRawPointer

    private static let instance = LoadedOnce { () throws(DynamicLibrary.LoadError) in try Curl() }

    /// The process-wide libcurl (loaded, and globally initialised, at the first call).
    public static func shared() throws(DynamicLibrary.LoadError) -> Curl { try instance.get() }

    private init() throws(DynamicLibrary.LoadError) {
        library = try DynamicLibrary(names: ["libcurl.so.4", "libcurl.so"], package: "libcurl4-openssl-dev")
        versionFunction = try library.symbol("curl_version", as: (@convention(c) () -> UnsafeMutablePointer<CChar>?).self)
        easyInit = try library.symbol("curl_easy_init", as: (@convention(c) () -> UnsafeMutableRawPointer?).self)
        easyCleanup = try library.symbol("curl_easy_cleanup", as: (@convention(c) (UnsafeMutableRawPointer?) -> Void).self)
        easyPerform = try library.symbol("curl_easy_perform", as: (@convention(c) (UnsafeMutableRawPointer?) -> CURLcode).self)
        easyStrerror = try library.symbol("curl_easy_strerror", as: (@convention(c) (CURLcode) -> UnsafePointer<CChar>?).self)
        slistAppend = try library.symbol("curl_slist_append", as: (@convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> OpaquePointer?).self)
        slistFreeAll = try library.symbol("curl_slist_free_all", as: (@convention(c) (OpaquePointer?) -> Void).self)
        setopt = try library.symbol("curl_easy_setopt", as: UnsafeMutableRawPointer.self)
        getinfo = try library.symbol("curl_easy_getinfo", as: UnsafeMutableRawPointer.self)
        let globalInit = try library.symbol("curl_global_init", as: (@convention(c) (Int) -> CURLcode).self)
        _ = globalInit(3)  // CURL_GLOBAL_ALL: done once, before any thread uses curl
    }

    /// libcurl's version line, e.g. "libcurl/7.88.1 OpenSSL/3.0.19 zlib/1.2.13 ...".
    public var version: String { versionFunction().map { String(cString: $0) } ?? "" }

    func message(_ code: CURLcode) -> String { easyStrerror(code).map { String(cString: $0) } ?? "curl error \(code.rawValue)" }
}
