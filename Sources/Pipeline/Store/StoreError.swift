/// A store failure: what went wrong, on which object or path, and what to do.
///
/// A struct wrapping a code, so callers can match on `code` while messages stay free-form.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        case missingObject
        case corruptObject
        case badMetadata
        case io
        case notFound
        case ambiguous
    }
    public var code: Code
    public var message: String
    public var digest: Digest?

    public init(_ code: Code, _ message: String, digest: Digest? = nil) {
        self.code = code; self.message = message; self.digest = digest
    }
    public var description: String { message }
}
