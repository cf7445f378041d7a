/// The gradient allreduce overlapped with the backward pass (`--allreduce overlapped`): the flat
/// gradient buffer is summed over the ranks in segments with non-blocking `MPI_Iallreduce`, each
/// started as soon as the step's last backward pass has finished it (a backbone's layers finish
/// top down, reported through `Parameters.onGradientsFinished`), and all are waited for before
/// the update.
///
/// Non-blocking collectives must be started in the same order on every rank, whatever each
/// rank's timing, so the segments are a fixed plan: the backbone's segments in the order its
/// backward pass finishes them, then the rest of the buffer (embeddings, user vectors, head).
/// Every report must be the plan's next segment; `finish` starts the ones not reported (all of
/// them on a rank whose shard was empty, or for a backbone that reports none). Open MPI moves a
/// non-blocking collective on only inside MPI calls (it has no progress thread by default), so
/// each report also tests the requests started before it.
public final class OverlappedSum {
    private let ranks: Ranks
    private let mpi: MPILibrary
    private let tensor: Tensor
    private let plan: [Range<Int>]
    /// The plan's pieces started so far; `requests[i]` is piece i's.
    private var requests: [OpaquePointer?] = []
    /// A report out of plan or a failed start: `finish` throws it (a report cannot).
    private var failure: MPIError?

    init(ranks: Ranks, mpi: MPILibrary, tensor: Tensor, segments: [Range<Int>]) {
        self.ranks = ranks
        self.mpi = mpi
        self.tensor = tensor
        plan = Self.plan(segments, count: tensor.count)
    }

    /// `segments` in their order, then the gaps they leave in 0..<count in ascending order;
    /// every piece at most `Int32.max` elements (MPI's counts are 32-bit).
    static func plan(_ segments: [Range<Int>], count: Int) -> [Range<Int>] {
        var gaps: [Range<Int>] = [], start = 0
        for segment in segments.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if segment.lowerBound > start { gaps.append(start..<segment.lowerBound) }
            start = max(start, segment.upperBound)
        }
        if start < count { gaps.append(start..<count) }
        let piece = Int(Int32.max)
        return (segments + gaps).flatMap { range in
            stride(from: range.lowerBound, to: range.upperBound, by: piece).map { $0..<min($0 + piece, range.upperBound) }
        }
    }

    /// The plan's pieces, and how many of them have been started.
    public var pieces: Int { plan.count }
    public var started: Int { requests.count }

    /// The backward pass finished `segment` of the gradients: starts summing it.
    public func finished(_ segment: Range<Int>) {
        guard failure == nil else { return }
        guard requests.count < plan.count, plan[requests.count] == segment else {
            failure = MPIError("the backward pass finished gradients \(segment), not the planned segment "
                               + (requests.count < plan.count ? "\(plan[requests.count])" : "(none left)"))
            return
        }
        timed {
            do {
                try start(requests.count)
                try progress()
            } catch {
                failure = error as? MPIError ?? MPIError("\(error)")
            }
        }
    }

    /// Starts the segments not reported and waits for every sum: afterwards each rank holds the
    /// summed gradients.
    public func finish() throws {
        if let failure { throw failure }
        try timed {
            while requests.count < plan.count { try start(requests.count) }
            let count = Int32(requests.count)
            try requests.withUnsafeMutableBufferPointer { buffer in
                try mpi.check(mpi.waitall(count, buffer.baseAddress, nil), "MPI_Waitall")
            }
        }
    }

    private func start(_ index: Int) throws {
        let piece = plan[index]
        var request: OpaquePointer?
        try mpi.check(mpi.iallreduce(MPILibrary.inPlace, tensor.data + piece.lowerBound, Int32(piece.count), mpi.float, mpi.sum,
                                     mpi.commWorld, &request), "MPI_Iallreduce")
        requests.append(request)
    }

    /// Lets Open MPI move the started sums on (MPI_Testall; whether they are done does not matter).
    private func progress() throws {
        var done: Int32 = 0
        let count = Int32(requests.count)
        try requests.withUnsafeMutableBufferPointer { buffer in
            try mpi.check(mpi.testall(count, buffer.baseAddress, &done, nil), "MPI_Testall")
        }
    }

    /// Runs `body`, adding its time to the ranks' allreduce seconds.
    private func timed<T>(_ body: () throws -> T) rethrows -> T {
        let started = MonotonicClock.now
        defer { ranks.reduceSeconds += MonotonicClock.now - started }
        return try body()
    }
}
