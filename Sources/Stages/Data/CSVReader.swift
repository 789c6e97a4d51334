public import Pipeline

/// CSV as RFC 4180 has it (quoted fields may hold commas, quotes doubled, and line breaks;
/// CRLF or LF line ends; a UTF-8 byte-order mark skipped), each record with the line it starts
/// on, so that an importer can say `file:line` of a bad row. Written here because neither CSV
/// library on the build machines (SwiftCSV, CSV.swift) reports where a record starts; tested
/// against Python's `csv` module.
public enum CSVReader {
    public struct Record: Sendable, Equatable {
        /// 1-based line of the record's first character.
        public var line: Int
        public var fields: [String]
    }

    /// Every record of `text`; blank lines are skipped. A quote left open is a `DataError` at
    /// the line where its field began.
    public static func records(_ text: String, file: String) throws -> [Record] {
        var out: [Record] = []
        var fields: [String] = [], field = [UInt8](), quoted = false, fieldStarted = false
        var line = 1, recordLine = 1, quoteLine = 1
        var bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        func endField() { fields.append(String(decoding: field, as: UTF8.self)); field.removeAll(keepingCapacity: true); fieldStarted = false }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty) { out.append(Record(line: recordLine, fields: fields)) }
            fields.removeAll(keepingCapacity: true)
        }
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\"") { field.append(b); i += 1 } else { quoted = false }
                } else {
                    if b == UInt8(ascii: "\n") { line += 1 }
                    field.append(b)
                }
            } else {
                switch b {
                case UInt8(ascii: "\"") where !fieldStarted && field.isEmpty:
                    quoted = true; fieldStarted = true; quoteLine = line
                case UInt8(ascii: ","):
                    endField()
                case UInt8(ascii: "\r") where i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\n"):
                    break  // the \n ends the record
                case UInt8(ascii: "\n"):
                    endRecord()
                    line += 1
                    recordLine = line
                default:
                    field.append(b); fieldStarted = true
                }
            }
            i += 1
        }
        if quoted { throw DataError(file: file, line: quoteLine, "a quoted field is never closed (a '\"' is missing)") }
        if !field.isEmpty || !fields.isEmpty || fieldStarted { endRecord() }
        return out
    }
}
