/// How a data-parallel step sums the flat gradient buffer over the ranks (`prm train --allreduce`).
public enum AllreduceMode: String, CaseIterable, Sendable {
    /// One blocking `MPI_Allreduce` of the whole buffer after the step's backward passes.
    case once
    /// Non-blocking `MPI_Iallreduce`s of the buffer's segments, each started as the last backward
    /// pass finishes it, waited for before the update (`OverlappedSum`).
    case overlapped
}
