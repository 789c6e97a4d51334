import JSON
#if canImport(Glibc)
import Glibc
#endif

/// A problem with a safetensors file, naming the file and the tensor.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// The element types the engine reads and writes.
public enum SafeTensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i32 = "I32", i64 = "I64"
    var size: Int { switch self { case .f32, .i32: 4; case .f16, .bf16: 2; case .i64: 8 } }
}

/// A safetensors file (the Hugging Face weight format: an 8-byte little-endian header length,
/// a JSON header of `name → {dtype, shape, data_offsets}`, then the raw little-endian data),
/// mapped read-only; tensors are converted to Float32 when asked for.
///
///     let f = try SafeTensorsFile(path: "model.safetensors")
///     let w = try f.tensor("model.embed_tokens.weight")     // F32, F16 or BF16 → Float32
public final class SafeTensorsFile: @unchecked Sendable {
    public struct Entry: Sendable {
        public var dtype: SafeTensorsDType
        public var shape: [Int]
        public var offset: Int
        public var length: Int
    }
    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let base: UnsafeRawPointer
    private let release: @Sendable (UnsafeRawPointer) -> Void
    private let dataStart: Int

    public convenience init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SafeTensorsError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafeTensorsError(path: path, message: "cannot stat") }
        let size = Int(st.st_size)
        guard size >= 8 else { throw SafeTensorsError(path: path, message: "too short to be a safetensors file (\(size) bytes)") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SafeTensorsError(path: path, message: "cannot map: \(String(cString: strerror(errno)))")
        }
        try self.init(base: UnsafeRawPointer(p), length: size, path: path, release: { munmap(UnsafeMutableRawPointer(mutating: $0), size) })
    }

    /// Safetensors bytes held in memory (a checkpoint, say); `name` is used in errors.
    public convenience init(bytes: [UInt8], name: String = "(memory)") throws {
        guard bytes.count >= 8 else { throw SafeTensorsError(path: name, message: "too short to be a safetensors file (\(bytes.count) bytes)") }
        let copy = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 16)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        try self.init(base: UnsafeRawPointer(copy), length: bytes.count, path: name, release: { UnsafeMutableRawPointer(mutating: $0).deallocate() })
    }

    private init(base: UnsafeRawPointer, length size: Int, path: String, release: @escaping @Sendable (UnsafeRawPointer) -> Void) throws {
        self.path = path
        var ok = false
        defer { if !ok { release(base) } }
        let headerLength = Int(base.loadUnaligned(as: UInt64.self).littleEndian)
        guard headerLength <= size - 8 else {
            throw SafeTensorsError(path: path, message: "header length \(headerLength) runs past the end of the file (\(size) bytes)")
        }
        let dataStart = 8 + headerLength
        let header: JSONValue
        do {
            header = try JSONParser.parse(bytes: Array(UnsafeRawBufferPointer(start: base + 8, count: headerLength)))
        } catch {
            throw SafeTensorsError(path: path, message: "the header is not JSON: \(error)")
        }
        guard let object = header.objectMembers else { throw SafeTensorsError(path: path, message: "the header is not a JSON object") }
        var entries: [String: Entry] = [:], metadata: [String: String] = [:]
        for (name, v) in object {
            if name == "__metadata__" {
                for (k, m) in v.objectMembers ?? [] { if let s = m.stringValue { metadata[k] = s } }
                continue
            }
            guard let dt = v["dtype"]?.stringValue else { throw SafeTensorsError(path: path, message: "tensor \(name) has no dtype") }
            guard let dtype = SafeTensorsDType(rawValue: dt) else {
                throw SafeTensorsError(path: path, message: "tensor \(name) has dtype \(dt); supported: F32, F16, BF16, I32, I64")
            }
            guard let shape = v["shape"]?.arrayValue?.compactMap(\.intValue), let offsets = v["data_offsets"]?.arrayValue?.compactMap(\.intValue),
                  offsets.count == 2, offsets[0] <= offsets[1] else {
                throw SafeTensorsError(path: path, message: "tensor \(name) lacks a shape or valid data_offsets")
            }
            let length = offsets[1] - offsets[0]
            guard length == shape.reduce(1, *) * dtype.size else {
                throw SafeTensorsError(path: path, message: "tensor \(name): shape \(shape) of \(dt) needs \(shape.reduce(1, *) * dtype.size) bytes, data_offsets give \(length)")
            }
            guard dataStart + offsets[1] <= size else {
                throw SafeTensorsError(path: path, message: "tensor \(name) runs past the end of the file (truncated download?)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, offset: offsets[0], length: length)
        }
        self.entries = entries; self.metadata = metadata
        self.base = base; self.dataStart = dataStart; self.release = release
        ok = true
    }

    deinit { release(base) }

    public var names: [String] { entries.keys.sorted() }

    /// A tensor as Float32 (integers are converted too).
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw SafeTensorsError(path: path, message: "no tensor named \(name)") }
        let n = e.shape.reduce(1, *)
        let src = base + dataStart + e.offset
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { dst in
            switch e.dtype {
            case .f32: for i in 0..<n { dst[i] = Float(bitPattern: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
            case .f16: for i in 0..<n { dst[i] = HalfFloat.f16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
            case .bf16: for i in 0..<n { dst[i] = HalfFloat.bf16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
            case .i32: for i in 0..<n { dst[i] = Float(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
            case .i64: for i in 0..<n { dst[i] = Float(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
            }
        }
        return Tensor(shape: e.shape, data: out)
    }

    /// An integer tensor's values (I32 or I64).
    public func integers(_ name: String) throws -> [Int] {
        guard let e = entries[name] else { throw SafeTensorsError(path: path, message: "no tensor named \(name)") }
        let src = base + dataStart + e.offset, n = e.shape.reduce(1, *)
        switch e.dtype {
        case .i32: return (0..<n).map { Int(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .i64: return (0..<n).map { Int(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        default: throw SafeTensorsError(path: path, message: "tensor \(name) is \(e.dtype.rawValue), not an integer type")
        }
    }

    /// Writes tensors in the given float type (header keys sorted, data 8-byte aligned, as the
    /// reference library writes them), atomically through a temporary file.
    public static func write(_ tensors: [String: Tensor], dtype: SafeTensorsDType = .f32, metadata: [String: String] = [:],
                             to path: String) throws {
        let bytes = try serialize(tensors, dtype: dtype, metadata: metadata, path: path)
        let tmp = "\(path).tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw SafeTensorsError(path: path, message: "cannot create: \(String(cString: strerror(errno)))") }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 { if errno == EINTR { continue }; close(fd); unlink(tmp); throw SafeTensorsError(path: path, message: "write failed") }
            done += n
        }
        guard fsync(fd) == 0, close(fd) == 0, rename(tmp, path) == 0 else {
            unlink(tmp); throw SafeTensorsError(path: path, message: "cannot complete the write: \(String(cString: strerror(errno)))")
        }
    }
}

extension SafeTensorsFile {
    /// The bytes of a safetensors file holding `tensors` (for checkpoints kept elsewhere).
    public static func serialize(_ tensors: [String: Tensor], dtype: SafeTensorsDType = .f32, metadata: [String: String] = [:],
                                 path: String = "(memory)") throws -> [UInt8] {
        guard dtype == .f32 || dtype == .f16 || dtype == .bf16 else {
            throw SafeTensorsError(path: path, message: "can write F32, F16 or BF16 tensors, not \(dtype.rawValue)")
        }
        var header: [(String, JSONValue)] = []
        if !metadata.isEmpty { header.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))) }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            let length = t.count * dtype.size
            header.append((name, ["dtype": .string(dtype.rawValue), "shape": .array(t.shape.map { .number(Double($0)) }),
                                  "data_offsets": [.number(Double(offset)), .number(Double(offset + length))]]))
            offset += length
        }
        var headerBytes = Array(JSONValue.object(header).canonical.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += headerBytes
        for name in names {
            let t = tensors[name]!
            switch dtype {
            case .f32: t.data.withUnsafeBytes { bytes.append(contentsOf: $0) }  // little-endian hosts (x86-64, arm64)
            case .f16: for v in t.data { withUnsafeBytes(of: HalfFloat.floatToF16(v).littleEndian) { bytes.append(contentsOf: $0) } }
            default: for v in t.data { withUnsafeBytes(of: HalfFloat.floatToBF16(v).littleEndian) { bytes.append(contentsOf: $0) } }
            }
        }
        return bytes
    }

    /// Every tensor, as Float32.
    public func all() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for name in names { out[name] = try tensor(name) }
        return out
    }
}

/// IEEE half and bfloat16 conversions (round to nearest even when narrowing).
public enum HalfFloat {
    public static func f16ToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F), mant = UInt32(h & 0x3FF)
        if exp == 0 {
            if mant == 0 { return Float(bitPattern: sign) }
            let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)  // subnormal
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
    }

    public static func floatToF16(_ f: Float) -> UInt16 {
        #if arch(x86_64) || arch(arm64)
        return Float16(f).bitPattern
        #else
        fatalError("Float16 is not available on this architecture")
        #endif
    }

    public static func bf16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    public static func floatToBF16(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        if f.isNaN { return UInt16(bits >> 16) | 0x40 }
        let roundingBias = ((bits >> 16) & 1) + 0x7FFF
        return UInt16((bits &+ roundingBias) >> 16)
    }
}
