#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Number and time formatting without Foundation's formatters, which load ICU's locale data
/// (milliseconds of start-up that a no-op run must not pay). Output is locale-independent.
public enum Format {
    /// `x` with `digits` digits after the point, exactly as C's printf("%.*f") writes it.
    public static func fixed(_ x: Double, _ digits: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = withVaList([Int32(digits), x]) { vsnprintf(&buffer, buffer.count, "%.*f", $0) }
        if n >= buffer.count { return "\(x)" }
        return String(decoding: buffer[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func pad2(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }

    private static func broken(_ date: Date, utc: Bool) -> tm {
        var t = time_t(date.timeIntervalSince1970)
        var out = tm()
        if utc { gmtime_r(&t, &out) } else { localtime_r(&t, &out) }
        return out
    }

    /// "HH:MM:SS" in local time, for log lines.
    public static func clock(_ date: Date = Date()) -> String {
        let t = broken(date, utc: false)
        return "\(pad2(t.tm_hour)):\(pad2(t.tm_min)):\(pad2(t.tm_sec))"
    }

    /// "2026-11-29T05:43:18Z".
    public static func iso8601(_ date: Date) -> String {
        let t = broken(date, utc: true)
        return "\(t.tm_year + 1900)-\(pad2(t.tm_mon + 1))-\(pad2(t.tm_mday))T\(pad2(t.tm_hour)):\(pad2(t.tm_min)):\(pad2(t.tm_sec))Z"
    }

    /// "20261129T054318" (UTC), sortable, for file names.
    public static func compactTimestamp(_ date: Date) -> String {
        let t = broken(date, utc: true)
        return "\(t.tm_year + 1900)\(pad2(t.tm_mon + 1))\(pad2(t.tm_mday))T\(pad2(t.tm_hour))\(pad2(t.tm_min))\(pad2(t.tm_sec))"
    }

    /// "42s", "3m07s", "2h05m".
    public static func duration(_ t: Double) -> String {
        if t < 60 { return "\(Int(t.rounded()))s" }
        let s = Int(t)
        if t < 3600 { return "\(s / 60)m\(pad2(Int32(s % 60)))s" }
        return "\(s / 3600)h\(pad2(Int32((s % 3600) / 60)))m"
    }
}
