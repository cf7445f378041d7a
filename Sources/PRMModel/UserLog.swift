import Foundation
import PRMCore
#if canImport(Glibc)
import Glibc
#endif

/// The users a running server fitted with its `adapt` op, one JSON line per fit, appended beside
/// the checkpoint (`adapted_users.jsonl` in its folder unless `prm serve --user-log` names
/// another file): a restarted server replays it, the workers behind one `prm proxy` share it (each
/// reads the lines the others append before it resolves a user), and `prm adapt --merge` folds
/// it into a checkpoint. A line is never rewritten: a later line for the same user replaces the
/// earlier fit when replayed.
///
/// Each append is one write(2) of a whole line on a file opened O_APPEND, then fsync: concurrent
/// writers do not interleave, and an acknowledged fit survives a crash. A crash mid-write leaves
/// a torn last line; readers report it and skip it, and `terminateTornLine` closes it before a
/// server appends again, so that the next line is not glued to it.
public struct UserLog: Sendable {
    /// One fitted user: the own row `UserModel.row` holds (offset or vector), and the fit.
    public struct Record: Sendable, Equatable {
        public var userID: String
        public var row: [Float]
        public var fit: ComparisonFit
        /// Which server process wrote it (a random id per process): it skips its own lines when
        /// it reads what other workers appended.
        public var writer: String
        /// The `ModelFingerprint` of the model it was fitted on ("" in lines that name none): a
        /// fit belongs to the h of that model, so another model skips it.
        public var model: String

        public init(userID: String, row: [Float], fit: ComparisonFit, writer: String, model: String = "") {
            (self.userID, self.row, self.fit, self.writer, self.model) = (userID, row, fit, writer, model)
        }

        /// Whether it was fitted on the model of fingerprint `fingerprint` (or names no model).
        public func fits(_ fingerprint: String) -> Bool { model.isEmpty || model == fingerprint }
    }

    /// What `read` found from an offset on.
    public struct Reading: Sendable {
        public var records: [Record] = []
        /// The byte offset after the last complete line: where the next read starts.
        public var end: Int
        /// Lines that are not records (torn, malformed), each named by its line's byte offset.
        public var problems: [String] = []
    }

    public static let defaultName = "adapted_users.jsonl"
    public let url: URL

    public init(_ url: URL) { self.url = url }

    /// The log of a checkpoint folder when no other file is named.
    public init(beside checkpoint: URL) { url = checkpoint.appendingPathComponent(Self.defaultName) }

    /// The file's size (0 when it does not exist yet): a reader compares it with its offset.
    public var size: Int {
        var info = stat()
        return stat(url.path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// The complete lines from byte `offset` on. A missing file has none; a last line without its
    /// newline is left for a later read (another writer may be writing it) unless `final`, when it
    /// is reported torn.
    public func read(from offset: Int = 0, final: Bool = false) throws(ModelError) -> Reading {
        guard FileManager.default.fileExists(atPath: url.path) else { return Reading(end: offset) }
        let data: Data
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(offset))
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw ModelError("cannot read the user log \(url.path): \(error.localizedDescription)")
        }
        var reading = Reading(end: offset)
        let bytes = [UInt8](data)
        var start = 0
        while start < bytes.count {
            guard let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                if final { reading.problems.append("\(url.lastPathComponent): byte \(offset + start): a torn last line (no newline); ignored") }
                break
            }
            let line = bytes[start..<newline]
            if !line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) {
                do { reading.records.append(try Self.record(Array(line))) } catch {
                    reading.problems.append("\(url.lastPathComponent): byte \(offset + start): \(error.message); ignored")
                }
            }
            start = newline + 1
            reading.end = offset + start
        }
        return reading
    }

    /// Appends one record as one line and flushes it to disk before returning.
    public func append(_ record: Record) throws(ModelError) {
        try appendBytes(Self.line(record))
    }

    /// Ends a torn last line with a newline (it then reads as one malformed line, reported and
    /// skipped), so that the next append starts a line of its own.
    public func terminateTornLine() throws(ModelError) {
        let size = self.size
        guard size > 0 else { return }
        let last: Data?
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(size - 1))
            last = try handle.read(upToCount: 1)
        } catch {
            throw ModelError("cannot read the user log \(url.path): \(error.localizedDescription)")
        }
        if last?.first != UInt8(ascii: "\n") { try appendBytes([UInt8(ascii: "\n")]) }
    }

    private func appendBytes(_ bytes: [UInt8]) throws(ModelError) {
        let fd = open(url.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ModelError("cannot open the user log \(url.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw ModelError("cannot append to the user log \(url.path): \(written < 0 ? String(cString: strerror(errno)) : "short write")")
        }
        guard fsync(fd) == 0 else { throw ModelError("cannot flush the user log \(url.path): \(String(cString: strerror(errno)))") }
    }

    static func line(_ record: Record) -> [UInt8] {
        var w = JSONWriter(capacity: 64 + record.row.count * 12)
        w.beginObject()
        w.key("user_id"); w.string(record.userID)
        w.key("row"); w.numbers(record.row)
        w.key("comparisons"); w.number(record.fit.n)
        w.key("correct"); w.number(record.fit.correct)
        w.key("loss"); w.number(record.fit.loss)
        w.key("writer"); w.string(record.writer)
        w.key("model"); w.string(record.model)
        w.endObject()
        return w.bytes + [UInt8(ascii: "\n")]
    }

    static func record(_ line: [UInt8]) throws(ModelError) -> Record {
        let object: JSONObject
        do {
            guard let parsed = try JSONReader.parse(line).object else { throw ModelError("a line that is not a JSON object") }
            object = parsed
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError("not JSON (\(error))")
        }
        guard let id = object["user_id"]?.string, !id.isEmpty else { throw ModelError("no 'user_id' string") }
        guard let values = object["row"]?.array, !values.isEmpty else { throw ModelError("user \(id): no 'row' list") }
        var row: [Float] = []
        row.reserveCapacity(values.count)
        for value in values {
            // Parsed from the text, not through Double: the row is what the writer held, bit for bit.
            guard let text = value.number?.text, let float = Float(text), float.isFinite else { throw ModelError("user \(id): a non-number in 'row'") }
            row.append(float)
        }
        var fit = ComparisonFit()
        fit.n = object["comparisons"]?.number?.integer ?? 0
        fit.correct = object["correct"]?.number?.integer ?? 0
        fit.loss = object["loss"]?.number?.value ?? 0
        return Record(userID: id, row: row, fit: fit, writer: object["writer"]?.string ?? "", model: object["model"]?.string ?? "")
    }

    /// Puts records into a model and its table, in order: a new user is appended, a user added
    /// earlier (by the log or `prm adapt`) gets the later row. Returns problems: records of trained
    /// users and rows of the wrong size are skipped, not applied.
    public static func apply(_ records: [Record], to userModel: UserModel, users: inout UserTable) -> [String] {
        var problems: [String] = []
        for record in records {
            if let problem = apply(record, to: userModel, users: &users) { problems.append(problem) }
        }
        return problems
    }

    /// One record; nil when applied, else why not.
    public static func apply(_ record: Record, to userModel: UserModel, users: inout UserTable) -> String? {
        guard record.row.count == userModel.rowSize else {
            return "user \(record.userID): a row of \(record.row.count) floats; this model's users have \(userModel.rowSize); skipped"
        }
        if users.contains(record.userID) {
            let index = users.index(of: record.userID)
            guard index > userModel.config.users, let row = userModel.row(index) else {
                return "user \(record.userID) is a trained user of this model; adapted users are new users; skipped"
            }
            row.value.update(from: record.row, count: record.row.count)
        } else {
            guard let index = userModel.appendUsers(record.row)?.lowerBound else { return "user \(record.userID): cannot append its row; skipped" }
            users.add(record.userID, index: index)
        }
        return nil
    }
}
