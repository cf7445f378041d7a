import Foundation
import PRMCore

/// What `prm train` and `prm sft` share to run as data-parallel ranks under `mpirun`: the
/// per-rank `--threads`, joining the ranks, and the quiet of every rank but rank 0.
enum DataParallel {
    static let threadsOption = OptionSpec.value(
        "threads", placeholder: "N",
        help: "Compute threads of this process (each rank's under mpirun: ranks × threads = cores). "
            + "Default: the cores, divided among the ranks mpirun starts on this host.")

    static let allreduceOption = OptionSpec.value(
        "allreduce", placeholder: "MODE",
        help: "Under mpirun, how the ranks sum each step's gradients: once (one MPI_Allreduce after the backward pass) or "
            + "overlapped (non-blocking, layer by layer as the BERT backward pass finishes them; README: Training on several ranks).",
        default: AllreduceMode.once.rawValue)

    /// Runs `body` with this process's ranks (`Ranks.single` without mpirun) and its compute
    /// threads set; the threads are restored afterwards (in-process callers, tests, get theirs back).
    static func run<T>(_ arguments: ParsedArguments, _ body: (Ranks) throws -> T) throws -> T {
        let threads = arguments.isSet("threads") ? try arguments.threads() : max(1, Parallel.cores / Ranks.localCount)
        let savedThreads = Compute.threads
        Compute.threads = threads
        defer { Compute.threads = savedThreads }
        let ranks = try Ranks.join()
        // The other ranks say nothing but errors: rank 0 speaks for the run.
        if !ranks.isLeader { Log.level = .error }
        if ranks.isDistributed { Log.info("\(ranks.size) data-parallel ranks (this is rank 0), \(threads) threads each") }
        return try body(ranks)
    }
}
