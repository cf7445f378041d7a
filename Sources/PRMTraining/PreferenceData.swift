import Foundation
import PRMCore
import PRMModel

/// One preference judgement: `userID` preferred `chosen` to `rejected` as the reply to `prompt`.
///
/// Texts are stored exactly as read, except in the prompt-free (TRL) layout where the whitespace
/// separating the shared prompt from the replies belongs to neither (see `PreferenceDataset`).
/// Joining prompt and reply is the tokenizer's business, as it is for the lengthpref files,
/// whose prompts end with `Assistant:` and whose replies start without a space.
public struct Comparison: Sendable, Equatable {
    public var userID: String
    public var prompt: String
    public var chosen: String
    public var rejected: String
    /// The user's explicit text (demographics, stated preferences); nil when absent or blank.
    public var userInfo: String?

    public init(userID: String, prompt: String, chosen: String, rejected: String, userInfo: String? = nil) {
        self.userID = userID
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.userInfo = userInfo
    }
}

/// Preference comparisons read from a JSONL file, one object per line:
///
///     {"user_id": "worker-1", "prompt": "...", "chosen": "...", "rejected": "...", "user_info": "..."}
///
/// `user_info` is optional (a string or null); other keys are ignored. `prompt` may also be a list
/// of `{"role", "content"}` chat messages, written out as text by the data's `TextTemplate` (the
/// caller's, or the one the file's prompts follow), exactly as the server writes a request's.
///
/// **Prompt-free layout** (Hugging Face / TRL "implicit prompt", e.g. Anthropic hh-rlhf): when no
/// row of a file has a `prompt` key, `chosen` and `rejected` each hold the whole conversation and
/// the prompt is their shared beginning. The split point is the longest common prefix, moved back
/// to the start of the word it falls in, so no word is cut (`Surely` vs `Sure thing` both start
/// their reply at `Sure...`). The whitespace run just before that point is the separator and is
/// kept by neither side: `"Human: hi\n\nAssistant: Sure thing"` / `"Human: hi\n\nAssistant: No"`
/// give prompt `"Human: hi\n\nAssistant:"` and replies `"Sure thing"` / `"No"`, exactly the
/// shape of the lengthpref files, so a dialogue yields the same comparison in either layout.
/// (TRL's own `extract_prompt` cuts at the first differing character and keeps one space in the
/// replies, `" blue."`; we prefer whole words and the native layout's shape.) A divergence in the
/// first word gives an empty prompt, which is allowed in both layouts. When one text is the
/// other's beginning the same rule applies, which keeps real pairs where one reply is a truncation
/// of the other (hh-rlhf has them: lengthpref train.jsonl line 57, `"You’re welcome."` against
/// `"You’re welcome.  I’d be happy…"`, splits after `Assistant: You’re`). The row is invalid
/// when the texts are identical or when the shorter one ends in whitespace at that point, since
/// then it has no reply at all.
///
/// **Users**: a row without `user_id` is invalid, except that when no row of the file has one
/// and the caller passes `defaultUser`, every row gets that user.
///
/// **Validation** happens for every row before anything is returned. Each problem is a
/// `DataIssue` with file, line and field; without `skipInvalid` any problem throws a `DataError`
/// listing all of them. Checked: invalid UTF-8 (before JSON parsing), invalid JSON, a top level
/// that is not an object, missing fields, wrong types (naming the JSON type found), a field
/// given twice, empty or whitespace-only `user_id`/`chosen`/`rejected` (the prompt may be empty),
/// a `user_id` with leading or trailing whitespace (it would silently become a second user),
/// `chosen` equal to `rejected`. Blank lines are skipped, a UTF-8 byte-order mark on line 1 and
/// CRLF line ends are tolerated. A file that is missing, empty, or left without comparisons is
/// an error naming the file.
public struct PreferenceDataset: Sendable {
    public let url: URL?
    public var comparisons: [Comparison]
    /// Rows skipped under `skipInvalid`.
    public var skipped: Int
    /// Why those rows were skipped, in line order, for the caller to log.
    public var issues: [DataIssue]
    /// How the rows' message prompts were written out: the caller's template, or the detected one.
    public var template: TextTemplate
    /// The share of prompts in hh turns (message prompts count), which detection went by.
    public var hhShare: Double

    public init(url: URL? = nil, comparisons: [Comparison], skipped: Int = 0, issues: [DataIssue] = [],
                template: TextTemplate = .hh, hhShare: Double = 1) {
        self.url = url
        self.comparisons = comparisons
        self.skipped = skipped
        self.issues = issues
        self.template = template
        self.hhShare = hhShare
    }

    /// Reads `url` in 1 MiB chunks, so memory holds the comparisons and one chunk, never the whole
    /// file twice. Issues name the file by `url.relativePath` (the path as the caller wrote it).
    /// `template` writes message prompts out (a checkpoint's); nil: the one the prompts follow.
    public static func load(_ url: URL, skipInvalid: Bool = false, defaultUser: String? = nil,
                            template: TextTemplate? = nil) throws(DataError) -> PreferenceDataset {
        let name = url.relativePath
        func fileError(_ problem: String) -> DataError {
            DataError(issues: [DataIssue(file: name, line: 0, field: nil, problem: problem)])
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw fileError("no such file")
        }
        guard !isDirectory.boolValue else { throw fileError("is a directory, expected a JSONL file") }

        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: url) } catch { throw fileError("cannot open: \(error.localizedDescription)") }
        // Closing a read-only handle cannot lose data; a failure here has nothing left to report.
        defer { try? handle.close() }

        var reader = JSONLineSplitter(PreferenceRowReader(file: name))
        while true {
            let chunk: Data?
            do { chunk = try handle.read(upToCount: 1 << 20) } catch { throw fileError("read failed: \(error.localizedDescription)") }
            guard let chunk, !chunk.isEmpty else { break }
            chunk.withUnsafeBytes { reader.feed($0) }
        }
        reader.endOfInput()
        return try reader.consumer.finish(lines: reader.lineCount, nonBlankRows: reader.nonBlankLines, url: url,
                                          skipInvalid: skipInvalid, defaultUser: defaultUser, template: template)
    }

    /// Parses JSONL held in memory; `name` stands for the file in issues.
    public static func parse(_ data: Data, name: String, skipInvalid: Bool = false, defaultUser: String? = nil,
                             template: TextTemplate? = nil) throws(DataError) -> PreferenceDataset {
        var reader = JSONLineSplitter(PreferenceRowReader(file: name))
        data.withUnsafeBytes { reader.feed($0) }
        reader.endOfInput()
        return try reader.consumer.finish(lines: reader.lineCount, nonBlankRows: reader.nonBlankLines, url: nil,
                                          skipInvalid: skipInvalid, defaultUser: defaultUser, template: template)
    }

    /// Distinct user ids, sorted (String order: "worker-10" sorts before "worker-2"). O(n) per call.
    public var userIDs: [String] { Set(comparisons.lazy.map(\.userID)).sorted() }

    /// The user's comparisons in file order. O(n) per call.
    public func comparisons(for user: String) -> [Comparison] { comparisons.filter { $0.userID == user } }

    /// Splits off a validation set, deterministically for a seed; both halves keep file order.
    /// `.comparisons`: each user's comparisons at random, `round(fraction × n_user)` of them to
    /// `dev`, so every user keeps the same share in both halves (users visited in sorted order).
    /// `.prompts`: `round(fraction × n_prompts)` distinct prompts at random, with every comparison on
    /// them, so `dev`'s texts are new to the model, as a test set's are (a comparison split lets the
    /// model recall a reply pair other users judged in training).
    /// A fraction outside 0...1 is clamped (NaN counts as 0): configs validate the value before it
    /// gets here. `train` keeps this data set's `skipped`/`issues`, which describe the load.
    public func split(validationFraction: Double, by unit: ValidationSplit = .comparisons,
                      seed: UInt64) -> (train: PreferenceDataset, dev: PreferenceDataset) {
        let fraction = validationFraction.isNaN ? 0 : min(max(validationFraction, 0), 1)
        var random = RandomSource(seed: seed)
        var isDev = [Bool](repeating: false, count: comparisons.count)
        switch unit {
        case .comparisons:
            var rowsByUser: [String: [Int]] = [:]
            for (index, comparison) in comparisons.enumerated() { rowsByUser[comparison.userID, default: []].append(index) }
            for user in rowsByUser.keys.sorted() {
                for row in Self.sample(rowsByUser[user] ?? [], fraction: fraction, &random) { isDev[row] = true }
            }
        case .prompts:
            let held = Set(Self.sample(Set(comparisons.map(\.prompt)).sorted(), fraction: fraction, &random))
            for (index, comparison) in comparisons.enumerated() where held.contains(comparison.prompt) { isDev[index] = true }
        }
        var train: [Comparison] = [], dev: [Comparison] = []
        for (index, comparison) in comparisons.enumerated() {
            if isDev[index] { dev.append(comparison) } else { train.append(comparison) }
        }
        return (PreferenceDataset(url: url, comparisons: train, skipped: skipped, issues: issues, template: template, hhShare: hhShare),
                PreferenceDataset(url: url, comparisons: dev, template: template, hhShare: hhShare))
    }

    /// A uniform random subset of `round(fraction × count)` elements (a partial Fisher-Yates).
    private static func sample<T>(_ elements: [T], fraction: Double, _ random: inout RandomSource) -> ArraySlice<T> {
        var elements = elements
        let take = Int((fraction * Double(elements.count)).rounded())
        for j in 0..<take {
            elements.swapAt(j, j + Int(random.next() % UInt64(elements.count - j)))
        }
        return elements[..<take]
    }

    /// Writes the comparisons as JSONL in the native layout (`user_id`, `prompt`, `chosen`,
    /// `rejected`, and `user_info` when present), atomically: what `load` reads back unchanged.
    public func write(to url: URL) throws {
        var bytes: [UInt8] = []
        for c in comparisons {
            var w = JSONWriter()
            w.beginObject()
            w.key("user_id"); w.string(c.userID)
            w.key("prompt"); w.string(c.prompt)
            w.key("chosen"); w.string(c.chosen)
            w.key("rejected"); w.string(c.rejected)
            if let info = c.userInfo { w.key("user_info"); w.string(info) }
            w.endObject()
            bytes += w.bytes
            bytes.append(UInt8(ascii: "\n"))
        }
        try AtomicFile.write(Data(bytes), to: url)
    }
}
