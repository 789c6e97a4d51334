import CLZ4

/// Compression in the standard LZ4 frame format (the `lz4` command-line tool reads it),
/// with the content checksum on so that the frame itself detects damage.
public enum LZ4Frame {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public static func compress(_ input: [UInt8]) throws(Failure) -> [UInt8] {
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        prefs.frameInfo.contentSize = UInt64(input.count)
        prefs.frameInfo.blockSizeID = LZ4F_max4MB
        prefs.compressionLevel = 0
        let bound = LZ4F_compressFrameBound(input.count, &prefs)
        var out = [UInt8](repeating: 0, count: bound)
        let written = out.withUnsafeMutableBytes { dst in
            input.withUnsafeBytes { src in
                LZ4F_compressFrame(dst.baseAddress, bound, src.baseAddress, input.count, &prefs)
            }
        }
        if LZ4F_isError(written) != 0 { throw Failure(description: "LZ4 compression failed: \(String(cString: LZ4F_getErrorName(written)))") }
        out.removeSubrange(written...)
        return out
    }

    public static func decompress(_ input: [UInt8]) throws(Failure) -> [UInt8] {
        var ctx: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&ctx, UInt32(LZ4F_VERSION))
        if LZ4F_isError(created) != 0 { throw Failure(description: "LZ4 context creation failed") }
        defer { LZ4F_freeDecompressionContext(ctx) }

        var out: [UInt8] = []
        var result: Int = 0
        var srcOffset = 0
        // Use the declared content size when present to size the buffer once.
        var info = LZ4F_frameInfo_t()
        var headerSize = input.count
        let hint = input.withUnsafeBytes { src in LZ4F_getFrameInfo(ctx, &info, src.baseAddress, &headerSize) }
        if LZ4F_isError(hint) != 0 {
            throw Failure(description: "not an LZ4 frame: \(String(cString: LZ4F_getErrorName(hint)))")
        }
        srcOffset = headerSize
        var chunk = [UInt8](repeating: 0, count: max(64 * 1024, min(Int(info.contentSize), 1 << 26)))
        out.reserveCapacity(Int(info.contentSize))
        repeat {
            var dstSize = chunk.count
            var srcSize = input.count - srcOffset
            result = chunk.withUnsafeMutableBytes { dst in
                input.withUnsafeBytes { src in
                    LZ4F_decompress(ctx, dst.baseAddress, &dstSize, src.baseAddress! + srcOffset, &srcSize, nil)
                }
            }
            if LZ4F_isError(result) != 0 {
                throw Failure(description: "damaged LZ4 frame: \(String(cString: LZ4F_getErrorName(result)))")
            }
            out.append(contentsOf: chunk[0..<dstSize])
            srcOffset += srcSize
            if srcSize == 0 && dstSize == 0 && result != 0 {
                throw Failure(description: "truncated LZ4 frame")
            }
        } while result != 0
        if srcOffset != input.count { throw Failure(description: "trailing bytes after LZ4 frame") }
        return out
    }
}
