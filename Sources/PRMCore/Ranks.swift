import Foundation

/// This process's place among the data-parallel ranks of a training run, and the few collective
/// operations data parallelism needs: sum the flat gradient buffer (one `MPI_Allreduce` a step),
/// sum a step's loss and counts, broadcast the initial weights from rank 0.
///
/// `Ranks.single` is a process on its own: every operation is a no-op, nothing of MPI is loaded.
/// `Ranks.join()` returns it unless the process was started by Open MPI's `mpirun` (which sets
/// `OMPI_COMM_WORLD_SIZE`); then it loads libmpi (`MPILibrary`), initialises MPI and sets
/// `MPI_ERRORS_RETURN` on `MPI_COMM_WORLD`, so every failing call comes back as an `MPIError`
/// instead of MPI's default of killing the job without saying where.
public final class Ranks: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private let mpi: MPILibrary?
    /// Seconds spent summing gradients (`sum(_: Tensor)`, or starting and waiting for an
    /// `OverlappedSum`), for the log and the bench.
    public internal(set) var reduceSeconds = 0.0

    public static let single = Ranks(rank: 0, size: 1, mpi: nil)

    /// A rank of `size` without MPI (`single`; tests of the sharding).
    init(rank: Int, size: Int, mpi: MPILibrary? = nil) {
        self.rank = rank
        self.size = size
        self.mpi = mpi
    }

    /// Rank 0: the one that logs, shows progress and writes the run folder.
    public var isLeader: Bool { rank == 0 }
    public var isDistributed: Bool { size > 1 }

    /// Whether an MPI launcher started this process: Open MPI's `mpirun` sets
    /// `OMPI_COMM_WORLD_SIZE` in every rank, a PMIx launcher (Slurm's `srun --mpi=pmix`) `PMIX_RANK`.
    public static var launchedByMPI: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil
    }

    /// Ranks running on this host (`OMPI_COMM_WORLD_LOCAL_SIZE`), 1 without mpirun: the default
    /// threads per rank are the host's cores divided among them.
    public static var localCount: Int {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init).map { max(1, $0) } ?? 1
    }

    nonisolated(unsafe) private static var joined: Ranks?
    private static let joinLock = NSLock()

    /// The world this process belongs to: `single` without mpirun, else MPI's world, initialised
    /// once per process (later calls return the same).
    public static func join() throws -> Ranks {
        joinLock.lock()
        defer { joinLock.unlock() }
        if let joined { return joined }
        guard launchedByMPI else { return single }
        let mpi = try MPILibrary()
        var provided: Int32 = 0
        try mpi.check(mpi.initThread(nil, nil, MPILibrary.threadFunneled, &provided), "MPI_Init_thread")
        try mpi.check(mpi.setErrhandler(mpi.commWorld, mpi.errorsReturn), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0, size: Int32 = 0
        try mpi.check(mpi.commRank(mpi.commWorld, &rank), "MPI_Comm_rank")
        try mpi.check(mpi.commSize(mpi.commWorld, &size), "MPI_Comm_size")
        let ranks = Ranks(rank: Int(rank), size: Int(size), mpi: mpi)
        joined = ranks
        return ranks
    }

    /// Ends MPI for a process that joined it: `MPI_Finalize` after a command that succeeded;
    /// after one that failed, `MPI_Abort`, which stops every rank of the job (the others may be
    /// waiting in a collective this rank will never enter) with the command's exit status.
    /// Without MPI it does nothing.
    public static func leave(status: Int32) {
        joinLock.lock()
        defer { joinLock.unlock() }
        guard let mpi = joined?.mpi else { return }
        if status == 0 {
            _ = mpi.finalize()
        } else {
            _ = mpi.abort(mpi.commWorld, status)
        }
        joined = nil
    }

    /// This rank's contiguous share of `batch`: ranks take ⌊n/size⌋ or ⌈n/size⌉ examples, the
    /// first ranks the larger shares, in the batch's order.
    public func shard(_ batch: [Int]) -> BatchShard {
        let start = batch.count * rank / size, end = batch.count * (rank + 1) / size
        return BatchShard(indices: Array(batch[start..<end]), offset: start, total: batch.count)
    }

    /// Sums `tensor` over all ranks, in place: afterwards every rank holds the same sum.
    public func sum(_ tensor: Tensor) throws {
        guard let mpi, size > 1 else { return }
        let started = MonotonicClock.now
        defer { reduceSeconds += MonotonicClock.now - started }
        // MPI counts are 32-bit: a larger buffer goes in pieces.
        let piece = Int(Int32.max)
        for start in stride(from: 0, to: tensor.count, by: piece) {
            let count = Int32(min(piece, tensor.count - start))
            try mpi.check(mpi.allreduce(MPILibrary.inPlace, tensor.data + start, count, mpi.float, mpi.sum, mpi.commWorld), "MPI_Allreduce")
        }
    }

    /// Starts summing `tensor` over all ranks in segments as a backward pass finishes them
    /// (`OverlappedSum`, planned from `segments`); nil for one process, which has nothing to sum.
    public func overlappedSum(_ tensor: Tensor, segments: [Range<Int>]) -> OverlappedSum? {
        guard let mpi, size > 1 else { return nil }
        return OverlappedSum(ranks: self, mpi: mpi, tensor: tensor, segments: segments)
    }

    /// Sums each of `values` over all ranks, in place (losses, counts: exact in double up to 2^53).
    public func sum(_ values: inout [Double]) throws {
        guard let mpi, size > 1 else { return }
        let count = Int32(values.count)
        try values.withUnsafeMutableBufferPointer { buffer in
            try mpi.check(mpi.allreduce(MPILibrary.inPlace, buffer.baseAddress, count, mpi.double, mpi.sum, mpi.commWorld), "MPI_Allreduce")
        }
    }

    /// Every rank's `rows` (`width` values per example of its `shard`) joined in the global
    /// batch's order, on every rank: each rank places its rows in a zeroed buffer of the whole
    /// batch and the buffers are summed, which is exact (x + 0 = x) and needs no gather call.
    public func gather(_ rows: [Double], of shard: BatchShard, width: Int) throws -> [Double] {
        precondition(rows.count == shard.indices.count * width, "\(width) values per example of the shard")
        guard isDistributed else { return rows }
        var all = [Double](repeating: 0, count: shard.total * width)
        all.replaceSubrange(shard.offset * width..<(shard.offset + shard.indices.count) * width, with: rows)
        try sum(&all)
        return all
    }

    /// Replaces the weights on every rank with rank 0's.
    public func broadcast(_ parameters: Parameters) throws {
        guard size > 1 else { return }
        try broadcast(parameters.values)
        parameters.markChanged()
    }

    /// Replaces `tensor` on every rank with rank 0's.
    func broadcast(_ tensor: Tensor) throws {
        guard let mpi, size > 1 else { return }
        let piece = Int(Int32.max)
        for start in stride(from: 0, to: tensor.count, by: piece) {
            let count = Int32(min(piece, tensor.count - start))
            try mpi.check(mpi.bcast(tensor.data + start, count, mpi.float, 0, mpi.commWorld), "MPI_Bcast")
        }
    }
}
