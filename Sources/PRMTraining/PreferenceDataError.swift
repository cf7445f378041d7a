/// One problem found while reading a preference file: where it is, which field, and what is wrong.
/// Its description follows the compiler convention `file:line: ...` so editors and terminals can jump to it.
public struct DataIssue: Sendable, Equatable, CustomStringConvertible {
    /// The file's path (as the caller gave it to `load`) or the name given to `parse`.
    public let file: String
    /// 1-based physical line; 0 for a problem with the file as a whole (missing, empty).
    public let line: Int
    /// The JSON key concerned, nil when the problem is the row itself (bad JSON, chosen == rejected).
    public let field: String?
    public let problem: String

    public init(file: String, line: Int, field: String?, problem: String) {
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem
    }

    public var description: String {
        let place = line > 0 ? "\(file):\(line):" : "\(file):"
        if let field { return "\(place) field '\(field)': \(problem)" }
        return "\(place) \(problem)"
    }
}

/// The data-set error: every problem found in one file, so a user fixes them in one pass rather
/// than one per run. Thrown by `PreferenceDataset.load`/`parse`.
public struct DataError: Error, CustomStringConvertible {
    public let issues: [DataIssue]

    /// How many issues the description spells out before summarising the rest.
    public static let listedIssues = 20

    public init(issues: [DataIssue]) { self.issues = issues }

    /// Distinct rows (lines > 0) with at least one issue.
    public var badRows: Int { Set(issues.lazy.filter { $0.line > 0 }.map(\.line)).count }

    /// `train.jsonl: 3 bad rows`, then up to `listedIssues` issues one per line, then `… and N more`.
    public var description: String {
        let file = issues.first?.file ?? "<unknown>"
        var lines: [String] = []
        let rows = badRows
        if rows > 0 { lines.append("\(file): \(rows) bad row\(rows == 1 ? "" : "s")") }
        // File-level issues (line 0) say why nothing could be loaded: show them first.
        let ordered = issues.filter { $0.line == 0 } + issues.filter { $0.line > 0 }
        for issue in ordered.prefix(Self.listedIssues) { lines.append(rows > 0 ? "  \(issue)" : "\(issue)") }
        if ordered.count > Self.listedIssues { lines.append("  … and \(ordered.count - Self.listedIssues) more") }
        return lines.joined(separator: "\n")
    }
}
