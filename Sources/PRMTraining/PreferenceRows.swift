import Foundation
import PRMCore
import PRMModel

/// Turns JSONL lines (from `JSONLineSplitter`) into validated comparisons: checks each row, and settles the file-wide questions (prompt-free layout, default user) at the end.
struct PreferenceRowReader: JSONLineConsumer {
    /// The members we decode, in the order a row's issues are reported.
    private static let keys = ["user_id", "prompt", "chosen", "rejected", "user_info"]
    private enum Key { static let userID = 0, prompt = 1, chosen = 2, rejected = 3, userInfo = 4 }

    /// A row whose own fields are fine but which may still fail a file-wide rule.
    private struct PendingRow {
        let line: Int
        let userID: String?
        /// False: the row had no `prompt` key, and the texts below are already split from the
        /// whole conversations (prompt-free layout), or `splitProblems` says why they could not be.
        let hadPrompt: Bool
        /// Text, or chat messages written out by the file's template at the end.
        let prompt: ChatText
        let chosen: String
        let rejected: String
        let userInfo: String?
        /// Reported only if the file turns out to be prompt-free; otherwise the row lacks a prompt.
        let splitProblems: [(field: String?, problem: String)]
    }

    let file: String
    private var badRows = 0
    private var issues: [DataIssue] = []
    private var pending: [PendingRow] = []
    /// First lines having these keys at all, valid or not: they decide the file's layout.
    private var firstPromptLine: Int?
    private var firstUserIDLine: Int?

    init(file: String) { self.file = file }

    // MARK: - One row

    mutating func consume(line: Int, bytes: UnsafeBufferPointer<UInt8>, dropped: Int) {
        var rowIssues: [DataIssue] = []
        defer { record(rowIssues) }
        func issue(_ field: String?, _ problem: String) {
            rowIssues.append(DataIssue(file: file, line: line, field: field, problem: problem))
        }

        // Checked before parsing so the message says what is really wrong with the line.
        if let bad = JSONByte.firstInvalidUTF8(bytes) {
            issue(nil, "invalid UTF-8 at byte \(bad + dropped + 1)")
            return
        }
        var reader = JSONReader(bytes)
        let top: JSONReader.TopLevel
        do { top = try reader.readMembers(wanted: Self.keys) } catch {
            issue(nil, "invalid JSON at byte \(error.offset + dropped + 1): \(error.message)")
            return
        }
        guard case .object(let values, let duplicates) = top else {
            if case .other(let kind) = top { issue(nil, "top level is \(kind.withArticle), expected an object") }
            return
        }
        for k in Set(duplicates).sorted() { issue(Self.keys[k], "given more than once") }

        if values[Key.prompt] != nil, firstPromptLine == nil { firstPromptLine = line }
        if values[Key.userID] != nil, firstUserIDLine == nil { firstUserIDLine = line }

        /// A required text: nil when missing or wrong (an issue is recorded unless `missingIsDeferred`).
        func text(_ k: Int, allowBlank: Bool, missingIsDeferred: Bool = false) -> String? {
            let field = Self.keys[k]
            switch values[k] {
            case nil:
                if !missingIsDeferred { issue(field, "missing") }
                return nil
            case .other(let kind)?:
                issue(field, "expected a string, got \(kind.rawValue)")
                return nil
            case .list?:
                issue(field, "expected a string, got array")
                return nil
            case .string(let value)?:
                if !allowBlank, isBlank(value) {
                    issue(field, value.isEmpty ? "empty" : "whitespace-only")
                    return nil
                }
                return value
            }
        }
        let userID = text(Key.userID, allowBlank: false, missingIsDeferred: true)
        if let userID, let first = userID.unicodeScalars.first, let last = userID.unicodeScalars.last,
           isWhitespace(first) || isWhitespace(last) {
            issue(Self.keys[Key.userID], "leading or trailing whitespace in \(quoted(userID))")
        }
        let prompt: ChatText?
        switch values[Key.prompt] {
        case nil: prompt = nil
        case .string(let value)?: prompt = .text(value)
        case .list(let messages)?:
            do { prompt = try ChatText.prompt(.array(messages), field: Self.keys[Key.prompt]) } catch {
                issue(Self.keys[Key.prompt], error.message)
                prompt = nil
            }
        case .other(let kind)?:
            issue(Self.keys[Key.prompt], "expected a string or a list of {\"role\", \"content\"} messages, got \(kind.rawValue)")
            prompt = nil
        }
        let chosen = text(Key.chosen, allowBlank: false)
        let rejected = text(Key.rejected, allowBlank: false)
        var userInfo: String?
        switch values[Key.userInfo] {
        case nil, .other(.null)?: userInfo = nil
        case .string(let value)?: userInfo = isBlank(value) ? nil : value
        case .other(let kind)?: issue(Self.keys[Key.userInfo], "expected a string or null, got \(kind.rawValue)")
        case .list?: issue(Self.keys[Key.userInfo], "expected a string or null, got array")
        }
        // In the prompt-free layout the same check happens after the split, on the replies.
        if prompt != nil, let chosen, let rejected, chosen == rejected {
            issue(nil, "chosen and rejected are identical")
        }
        guard rowIssues.isEmpty, let chosen, let rejected else { return }
        if let prompt {
            pending.append(PendingRow(line: line, userID: userID, hadPrompt: true, prompt: prompt, chosen: chosen,
                                      rejected: rejected, userInfo: userInfo, splitProblems: []))
            return
        }
        // Split now, before knowing the file's layout, so only the split texts are kept: a
        // prompt-free file would otherwise hold every conversation twice until the end.
        var problems: [(field: String?, problem: String)] = []
        var parts = (prompt: "", chosen: "", rejected: "")
        switch splitImplicitPrompt(chosen, rejected) {
        case .identical:
            problems.append((nil, "chosen and rejected are identical"))
        case .prefix:
            problems.append((nil, "chosen and rejected have no differing reply (one is a prefix of the other, ending at a word boundary)"))
        case .split(let p, let c, let r):
            parts = (p, c, r)
            if isBlank(c) { problems.append(("chosen", "reply after the shared prompt is whitespace-only")) }
            if isBlank(r) { problems.append(("rejected", "reply after the shared prompt is whitespace-only")) }
            // Canonically equivalent but differently encoded texts split apart, yet compare equal.
            if c == r { problems.append((nil, "chosen and rejected are identical")) }
        }
        pending.append(PendingRow(line: line, userID: userID, hadPrompt: false, prompt: .text(parts.prompt),
                                  chosen: parts.chosen, rejected: parts.rejected, userInfo: userInfo,
                                  splitProblems: problems))
    }

    private mutating func record(_ rowIssues: [DataIssue]) {
        guard !rowIssues.isEmpty else { return }
        badRows += 1
        issues.append(contentsOf: rowIssues)
    }

    // MARK: - The file as a whole

    /// `template` writes message prompts out; nil: the one the prompts follow (`TextTemplate.detect`).
    mutating func finish(lines: Int, nonBlankRows: Int, url: URL?, skipInvalid: Bool, defaultUser: String?,
                         template: TextTemplate?) throws(DataError) -> PreferenceDataset {
        func fileIssue(_ problem: String) -> DataIssue { DataIssue(file: file, line: 0, field: nil, problem: problem) }
        if let defaultUser, isBlank(defaultUser) {
            throw DataError(issues: [fileIssue("defaultUser is empty or whitespace-only")])
        }
        let promptFree = firstPromptLine == nil
        let assignedUser = firstUserIDLine == nil ? defaultUser : nil
        var comparisons: [Comparison] = []
        comparisons.reserveCapacity(pending.count)
        let rows = pending
        pending = []  // the rows' strings move into `comparisons` (shared storage, no copy)
        let detection = TextTemplate.detect(rows.lazy.filter { $0.hadPrompt || promptFree }.map(\.prompt))
        let format = template ?? detection.template

        for row in rows {
            var rowIssues: [DataIssue] = []
            func issue(_ field: String?, _ problem: String) {
                rowIssues.append(DataIssue(file: file, line: row.line, field: field, problem: problem))
            }
            let userID = row.userID ?? assignedUser
            if userID == nil {
                issue("user_id", firstUserIDLine == nil
                      ? "missing (no row has one; pass defaultUser to give every row the same user)"
                      : "missing")
            }
            if !row.hadPrompt {
                if promptFree {
                    for problem in row.splitProblems { issue(problem.field, problem.problem) }
                } else if let firstPromptLine {
                    issue("prompt", "missing (line \(firstPromptLine) has one, so this file is not in the prompt-free layout)")
                }
            }
            if !rowIssues.isEmpty {
                record(rowIssues)
                continue
            }
            guard let userID else { continue }  // unreachable: a missing user raised an issue above
            comparisons.append(Comparison(userID: userID, prompt: format.prompt(row.prompt), chosen: format.reply(.text(row.chosen)),
                                          rejected: format.reply(.text(row.rejected)), userInfo: row.userInfo))
        }

        // Row issues were found in two passes; report them in line order (stable within a line).
        let sorted = issues.enumerated()
            .sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }
            .map(\.element)
        if !sorted.isEmpty && !skipInvalid { throw DataError(issues: sorted) }
        if comparisons.isEmpty {
            let why = nonBlankRows == 0
                ? (lines == 0 ? "no comparisons: the file is empty" : "no comparisons: the file has only blank lines")
                : "no comparisons: all \(nonBlankRows) rows are invalid"
            throw DataError(issues: [fileIssue(why)] + sorted)
        }
        return PreferenceDataset(url: url, comparisons: comparisons, skipped: badRows, issues: sorted,
                                 template: format, hhShare: detection.hhShare)
    }
}

// MARK: - Prompt-free layout

enum ImplicitPromptSplit: Equatable {
    case identical
    case prefix
    case split(prompt: String, chosen: String, rejected: String)
}

/// Splits two whole conversations into shared prompt and replies (rule in `PreferenceDataset`'s
/// documentation): longest common prefix in bytes, moved back to a scalar boundary, then to the
/// start of the current word; the whitespace run before that word is dropped from both sides.
/// A text that is the other's beginning still splits, as long as it does not end in whitespace.
func splitImplicitPrompt(_ chosen: String, _ rejected: String) -> ImplicitPromptSplit {
    var a = chosen, b = rejected  // withUTF8 may make a string contiguous, so it needs a var
    return a.withUTF8 { a in
        b.withUTF8 { b in
            let shared = min(a.count, b.count)
            var p = 0
            while p < shared && a[p] == b[p] { p += 1 }
            if p == a.count && p == b.count { return .identical }
            // If one text ended at p, p is a scalar boundary in both. Otherwise the bytes differ at p,
            // and if that is inside a multi-byte scalar, the scalar's lead byte is shared: step back to it.
            if p < a.count && p < b.count {
                while p > 0 && a[p] & 0xC0 == 0x80 { p -= 1 }
            }
            // Walk the shared scalars, remembering the last word start and the whitespace run before it.
            var wordStart = 0, separatorStart = 0, runStart = 0
            var previousWasSpace = false
            var q = 0
            while q < p {
                let (scalar, length) = decodeScalar(a, at: q)
                if isWhitespace(scalar) {
                    if !previousWasSpace { runStart = q }
                    previousWasSpace = true
                    wordStart = q + length
                    separatorStart = runStart
                } else {
                    previousWasSpace = false
                }
                q += length
            }
            // One text is the other's beginning and ends in whitespace: it has no reply at all.
            // (A shorter text ending mid-word still has one: "A: yes" vs "A: yes please".)
            if wordStart == min(a.count, b.count) { return .prefix }
            func text(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
                String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
            }
            return .split(prompt: text(a, 0..<separatorStart),
                          chosen: text(a, wordStart..<a.count),
                          rejected: text(b, wordStart..<b.count))
        }
    }
}

/// Decodes the scalar starting at `offset` of valid UTF-8 (a Swift string's storage).
private func decodeScalar(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> (Unicode.Scalar, Int) {
    let b0 = UInt32(bytes[offset])
    let value: UInt32, length: Int
    if b0 < 0x80 {
        value = b0; length = 1
    } else if b0 < 0xE0 {
        value = (b0 & 0x1F) << 6 | UInt32(bytes[offset + 1] & 0x3F); length = 2
    } else if b0 < 0xF0 {
        value = (b0 & 0x0F) << 12 | UInt32(bytes[offset + 1] & 0x3F) << 6 | UInt32(bytes[offset + 2] & 0x3F); length = 3
    } else {
        value = (b0 & 0x07) << 18 | UInt32(bytes[offset + 1] & 0x3F) << 12
            | UInt32(bytes[offset + 2] & 0x3F) << 6 | UInt32(bytes[offset + 3] & 0x3F); length = 4
    }
    // Valid UTF-8 always decodes to a scalar; U+FFFD keeps this total without a force-unwrap.
    return (Unicode.Scalar(value) ?? "\u{FFFD}", length)
}

/// Unicode White_Space, the property `Character.isWhitespace` also rests on.
@inline(__always)
private func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    scalar.isASCII ? JSONByte.isJSONWhitespace(UInt8(scalar.value)) || scalar.value == 0x0B || scalar.value == 0x0C
        : scalar.properties.isWhitespace
}

private func isBlank(_ text: String) -> Bool { text.unicodeScalars.allSatisfy(isWhitespace) }

private func quoted(_ text: String) -> String {
    "\"" + text.unicodeScalars.map { $0.escaped(asASCII: false) }.joined() + "\""
}
