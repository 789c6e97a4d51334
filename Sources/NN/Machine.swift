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
