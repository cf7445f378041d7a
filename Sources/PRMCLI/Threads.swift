import Foundation
import PRMCore

/// Bounds on compute threads.
enum Threads {
    /// Compute threads are busy threads: beyond the cores they only take turns, and sgemm and
    /// prm's parallel regions get slower with each extra one. A few times the cores still
    /// leaves room for a share computed for a larger machine; far beyond it a value is a typo,
    /// and one that asks for more threads than the system allows kills the process inside
    /// OpenMP (`libgomp: Thread creation failed`). 256 bounds even the largest hosts.
    static var limit: Int { min(4 * Parallel.cores, 256) }
}
