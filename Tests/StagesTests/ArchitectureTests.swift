import Foundation
import XCTest

/// The Stages module's layering (docs/architecture.md), read from the sources themselves: the
/// method lives in `HAPS/` and depends only on the layers below it; no stage type's file calls
/// another stage type; the lower layers never reach up. A move that breaks the layering fails
/// here, naming the file and the name it uses.
final class ArchitectureTests: XCTestCase {
    static let stagesRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/Stages").path

    /// The folders below the method, which may use each other but never the method or a stage.
    static let foundations: Set<String> = ["Support", "Random", "Metrics", "Data", "Dialogue", "Resources"]

    struct SourceFile {
        var path: String      // relative to Sources/Stages
        var folder: String
        var text: String      // comments and string literals removed
        var declared: [String]
        var isStageType: Bool
    }

    static func sources() throws -> [SourceFile] {
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: stagesRoot) else { throw XCTSkip("no sources at \(stagesRoot)") }
        var out: [SourceFile] = []
        for case let path as String in walker where path.hasSuffix(".swift") {
            let raw = try String(contentsOfFile: stagesRoot + "/" + path, encoding: .utf8)
            let text = stripped(raw)
            // Top-level declarations only (nested types such as `Params` belong to their type).
            let declared = matches(#"(?m)^(?:public |internal |package )?(?:final )?(?:struct|class|enum|protocol|actor|typealias) +(\w+)"#, in: text)
            let isStage = !matches(#"(?m)^(?:public )?struct +(\w+) *: *StageType\b"#, in: text).isEmpty
            out.append(SourceFile(path: path, folder: path.contains("/") ? String(path.split(separator: "/")[0]) : ".",
                                  text: text, declared: declared, isStageType: isStage))
        }
        return out
    }

    /// The text without comments and string literals (names in prose or messages are not uses).
    static func stripped(_ s: String) -> String {
        var t = s.replacingOccurrences(of: #"(?s)""".*?""""#, with: "\"\"", options: .regularExpression)
        t = t.replacingOccurrences(of: #""(?:[^"\\\n]|\\.)*""#, with: "\"\"", options: .regularExpression)
        return t.replacingOccurrences(of: #"//[^\n]*"#, with: "", options: .regularExpression)
    }

    static func matches(_ pattern: String, in text: String) -> [String] {
        let re = try! NSRegularExpression(pattern: pattern)
        return re.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            $0.numberOfRanges > 1 ? Range($0.range(at: 1), in: text).map { String(text[$0]) } : nil
        }
    }

    static func uses(_ name: String, in text: String) -> Bool {
        text.range(of: #"\b\#(name)\b"#, options: .regularExpression) != nil
    }

    /// Every (file, name, file that declares it) where `file` uses a name declared elsewhere.
    static func references(_ files: [SourceFile]) -> [(from: SourceFile, name: String, to: SourceFile)] {
        var owner: [String: SourceFile] = [:]
        for f in files { for d in f.declared { owner[d] = f } }
        var out: [(SourceFile, String, SourceFile)] = []
        for f in files {
            for (name, to) in owner where to.path != f.path && uses(name, in: f.text) { out.append((f, name, to)) }
        }
        return out
    }

    func testNoStageTypeCallsAnother() throws {
        let files = try Self.sources()
        XCTAssertGreaterThanOrEqual(files.filter(\.isStageType).count, 11, "the stage types were not found")
        let bad = Self.references(files).filter { $0.to.isStageType && $0.from.path != "Registry.swift" }
            .map { "\($0.from.path) uses \($0.name) (\($0.to.path))" }
        XCTAssertEqual(bad.sorted(), [], "only the registry names stage types; stage types are not libraries")
    }

    func testTheMethodDependsOnlyOnTheLayersBelowIt() throws {
        let files = try Self.sources()
        XCTAssertFalse(files.filter { $0.folder == "HAPS" }.isEmpty, "no HAPS/ folder")
        let bad = Self.references(files).filter { $0.from.folder == "HAPS" && $0.to.folder != "HAPS" && !Self.foundations.contains($0.to.folder) }
            .map { "\($0.from.path) uses \($0.name) (\($0.to.path))" }
        XCTAssertEqual(bad.sorted(), [], "HAPS/ may use only " + Self.foundations.sorted().joined(separator: ", "))
    }

    func testTheFoundationsNeverReachUp() throws {
        let files = try Self.sources()
        let bad = Self.references(files).filter { Self.foundations.contains($0.from.folder) && !Self.foundations.contains($0.to.folder) }
            .map { "\($0.from.path) uses \($0.name) (\($0.to.path))" }
        XCTAssertEqual(bad.sorted(), [], "the folders below the method use nothing above them (no cycles)")
    }
}
