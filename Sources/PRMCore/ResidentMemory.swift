import Foundation

/// The process's resident memory from Linux's /proc (peak since the last reset), for benchmarks
/// that report memory per case.
public enum ResidentMemory {
    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Resets the peak (VmHWM) to the current resident size: writing "5" to /proc/self/clear_refs.
    public static func resetPeak() throws(Unavailable) {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else {
            throw Unavailable(description: "/proc/self/clear_refs: cannot open for writing (Linux only)")
        }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("5".utf8)) } catch {
            throw Unavailable(description: "/proc/self/clear_refs: cannot reset the peak: \(error.localizedDescription)")
        }
    }

    /// The peak resident size since the start or the last `resetPeak()`, in MB (VmHWM).
    public static func peakMegabytes() throws(Unavailable) -> Double { try statusMegabytes("VmHWM") }

    /// The resident size now, in MB (VmRSS).
    public static func currentMegabytes() throws(Unavailable) -> Double { try statusMegabytes("VmRSS") }

    /// One of /proc/self/status's sizes ("VmHWM:    123456 kB"), in MB.
    private static func statusMegabytes(_ key: String) throws(Unavailable) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }),
              let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else {
            throw Unavailable(description: "/proc/self/status: no \(key) line (Linux only)")
        }
        return kilobytes / 1024
    }
}
