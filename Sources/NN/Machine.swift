#if canImport(Glibc)
import Glibc
#endif

/// What results depend on besides the inputs: the CPU (its model and instruction sets decide
/// which OpenBLAS kernels run, and kernels round differently) and the numeric library.
/// Written into run records and benchmark output.
public enum Machine {
    /// /proc/cpuinfo's first `model name` ("AMD EPYC", "Intel(R) Xeon(R) ..."), or "unknown".
    public static let cpuModel: String = cpuinfo("model name") ?? "unknown"

    /// The CPU's feature flags (/proc/cpuinfo `flags`), empty where unknown.
    public static let cpuFlags: Set<String> = Set((cpuinfo("flags") ?? "").split(separator: " ").map(String.init))

    private static func cpuinfo(_ field: String) -> String? {
        guard let f = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil, capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, f) > 0 {
            let text = String(cString: line!)
            guard text.hasPrefix(field), let colon = text.firstIndex(of: ":") else { continue }
            return text[text.index(after: colon)...].trimmingCharacters(in: " \t\n")
        }
        return nil
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let scalars = Set(set.unicodeScalars)
        var s = Substring(self)
        while let c = s.unicodeScalars.first, scalars.contains(c) { s = s.dropFirst() }
        while let c = s.unicodeScalars.last, scalars.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}

/// How the engine's allocations are served. Tensors of a training step (activations,
/// per-sequence gradients) are megabytes each and are freed and allocated again every step:
/// with glibc's defaults, blocks that large come from `mmap` and go back to the kernel when
/// freed, so every step pays page faults and the kernel's zeroing of fresh pages (about 15% of
/// a training step in bench/engine). `keepFreedMemory` raises the mmap and trim thresholds
/// so that freed blocks are reused instead; it runs once, when the numeric engine loads.
public enum Memory {
    /// glibc's mallopt parameters (malloc.h), which Swift's Glibc module does not export.
    private static let trimThreshold: Int32 = -1, mmapThreshold: Int32 = -3

    public static func keepFreedMemory() { _ = configured }

    private static let configured: Bool = {
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return false }  // not glibc
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        // A user's MALLOC_*_ environment settings win.
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil { _ = mallopt(mmapThreshold, 1 << 27) }  // 128 MiB
        if getenv("MALLOC_TRIM_THRESHOLD_") == nil { _ = mallopt(trimThreshold, 1 << 29) }  // 512 MiB
        return true
    }()
}
