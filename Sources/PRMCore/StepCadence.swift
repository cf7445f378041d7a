/// "Every n-th step, and the last": when the trainers log, end an epoch and checkpoint.
/// Counting the last step too means a run whose length is no multiple of `every` still logs
/// (or saves) where it stops.
public struct StepCadence: Sendable {
    public let every: Int
    public let last: Int

    public init(every: Int, last: Int) {
        precondition(every >= 1, "a cadence needs a positive period")
        self.every = every
        self.last = last
    }

    /// Whether the step that brings the count to `done` is due.
    public func isDue(_ done: Int) -> Bool { done % every == 0 || done == last }
}
