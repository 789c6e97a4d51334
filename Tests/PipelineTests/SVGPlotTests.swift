import XCTest
@testable import Pipeline

/// The line plot's series stay distinguishable: the palette has 8 colours, and series past it
/// repeat a colour with a dash pattern of their own (in the lines and in the legend).
final class SVGPlotTests: XCTestCase {
    func testSeriesPastThePaletteAreDashed() {
        let series = (0..<11).map { i in (name: "s\(i)", points: [(x: "1", y: Double(i)), (x: "2", y: Double(i) + 1)]) }
        let svg = SVGPlot(title: "t", xLabel: "x", yLabel: "y", series: series).svg
        let lines = svg.split(separator: "\n").filter { $0.hasPrefix("<polyline") }.map(String.init)
        XCTAssertEqual(lines.count, 11)
        func attribute(_ name: String, _ line: String) -> String? {
            guard let r = line.range(of: name + "=\"") else { return nil }
            return String(line[r.upperBound...].prefix { $0 != "\"" })
        }
        let styles = lines.map { "\(attribute("stroke", $0) ?? "") \(attribute("stroke-dasharray", $0) ?? "solid")" }
        XCTAssertEqual(Set(styles).count, 11, "every series its own colour and dash: \(styles)")
        XCTAssertTrue(lines.prefix(8).allSatisfy { attribute("stroke-dasharray", $0) == nil }, "the first 8 are solid, as before")
        XCTAssertEqual(attribute("stroke-dasharray", lines[8]), "6 3")
        XCTAssertEqual(attribute("stroke", lines[8]), attribute("stroke", lines[0]))
        let legend = svg.split(separator: "\n").filter { $0.hasPrefix("<line x1=") && $0.contains("stroke-dasharray") }
        XCTAssertEqual(legend.count, 3, "the legend shows the dashes of s8, s9, s10: \(legend)")
        XCTAssertTrue(legend.allSatisfy { $0.contains("stroke-dasharray=\"6 3\"") })
    }
}
