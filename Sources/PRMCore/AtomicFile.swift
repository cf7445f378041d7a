import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed atomic write: the destination, the step that failed, and the system's reason.
/// The destination is untouched when this is thrown (the temporary file is removed), except
/// after `rename` succeeded and only the directory sync failed, which is not reported.
public struct AtomicFileError: Error, CustomStringConvertible, Sendable {
    /// The file that was to be written.
    public let path: String
    /// What was being done, e.g. "creating a temporary file in /data/run".
    public let step: String
    /// `errno` at the failure, or 0 when the failure was not a system call's.
    public let code: Int32

    /// The step and the system's reason, without the path: "renaming … into place failed: …".
    public var reason: String {
        code == 0 ? "\(step) failed" : "\(step) failed: \(String(cString: strerror(code)))"
    }

    public var description: String { "cannot write \(path): \(reason)" }
}

/// Whole-file writes that never leave a half-written file at the destination: the bytes go to
/// a temporary file in the same directory (same file system, so `rename` is atomic), are
/// flushed with `fsync`, and only then renamed over the destination. A crash leaves either the
/// old file or the new one, plus at worst a stray `.NAME.*.tmp` next to it. Readers that have
/// the old file open or memory-mapped (`SafetensorsFile`) keep seeing the old contents whole.
public enum AtomicFile {
    /// Writes `data` to `url`, replacing any existing file whole. `permissions` are those of a
    /// plain create (filtered by the umask); 0o600 keeps a secret unreadable by others from the
    /// first byte.
    public static func write(_ data: Data, to url: URL, permissions: mode_t = 0o666) throws {
        try write(to: url, permissions: permissions) { sink in try sink.write(data) }
    }

    /// Writes `value` as pretty-printed JSON with sorted keys (stable diffs for recorded results).
    public static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(encoder.encode(value), to: url)
    }

    /// Streams the file's contents through `produce`, then moves them into place. Large
    /// files (checkpoints) need not be assembled in memory first. If `produce` throws, the
    /// temporary file is removed, the destination is left as it was, and the error is rethrown.
    /// The `Sink` must not be used after `produce` returns.
    public static func write(to url: URL, permissions: mode_t = 0o666, _ produce: (Sink) throws -> Void) throws {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        // A fresh random name created with O_EXCL, rather than mkstemp: open's mode argument
        // is filtered by the umask, so the result gets the same permissions a plain create
        // would (mkstemp forces 0600). The name is shortened so that a long destination name
        // cannot push the temporary one past NAME_MAX.
        let stem = String(url.lastPathComponent.prefix(100))
        let tempPath = url.deletingLastPathComponent()
            .appendingPathComponent(".\(stem).\(UUID().uuidString).tmp").path

        let fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, permissions)
        guard fd >= 0 else {
            // errno is read first: building the message allocates, which may overwrite it.
            let code = errno
            throw AtomicFileError(path: path, step: "creating a temporary file in \(directory)", code: code)
        }
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { _ = close(fd) }
            if !renamed { _ = unlink(tempPath) }
        }

        try produce(Sink(fd: fd, path: path))
        guard fsync(fd) == 0 else {
            let code = errno
            throw AtomicFileError(path: path, step: "flushing \(tempPath) to disk", code: code)
        }
        isOpen = false
        // close can report a deferred write error on some file systems (NFS); the bytes are
        // not known to be on disk unless it succeeds.
        guard close(fd) == 0 else {
            let code = errno
            throw AtomicFileError(path: path, step: "closing \(tempPath)", code: code)
        }
        guard rename(tempPath, path) == 0 else {
            let code = errno
            throw AtomicFileError(path: path, step: "renaming \(tempPath) into place", code: code)
        }
        renamed = true
        syncDirectory(directory)
    }

    /// Appends bytes to the temporary file of one `write(to:_:)` call.
    public struct Sink {
        fileprivate let fd: Int32
        fileprivate let path: String

        public func write(_ data: Data) throws {
            try data.withUnsafeBytes { try write($0) }
        }

        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard let base = bytes.baseAddress else { return }
            var offset = 0
            while offset < bytes.count {
                // Chunks of at most 1 GiB: Linux transfers at most 0x7ffff000 bytes per call,
                // and write may return early anyway, so the loop resumes where it stopped.
                let chunk = min(bytes.count - offset, 1 << 30)
                let written = systemWrite(fd, base + offset, chunk)
                if written < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    throw AtomicFileError(path: path, step: "writing \(chunk) bytes", code: code)
                }
                guard written > 0 else {
                    throw AtomicFileError(path: path, step: "writing \(chunk) bytes (no progress)", code: 0)
                }
                offset += written
            }
        }
    }

    /// Makes the rename itself durable. Best effort: the data are already synced and the
    /// rename already atomic, and some file systems refuse fsync on a directory (EINVAL), so a
    /// failure here is not worth failing a write that is otherwise complete.
    private static func syncDirectory(_ directory: String) {
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }
}
