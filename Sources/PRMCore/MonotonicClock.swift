import Foundation

/// Monotonic time in seconds (the uptime clock, unaffected by wall-clock changes): intervals,
/// deadlines, latencies.
public enum MonotonicClock {
    public static var now: Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
