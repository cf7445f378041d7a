import CBLAS
import Foundation

/// Process-wide compute settings: which library runs the matrix products and how many threads
/// compute may use (sgemm and prm's own parallel regions alike).
///
/// Both are plain process globals, read on every sgemm: set them at start-up (`prm --backend`,
/// `PRM_BACKEND`, a server's `--threads`) or between computations (tests switching backends),
/// never while another thread computes.
public enum Compute {
    /// The sgemm library behind `BLAS.gemm`.
    public enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
        /// oneDNN's `dnnl_sgemm` (Debian `libdnnl-dev`): dispatches on the CPU's instruction sets at
        /// run time, so it reaches the machine's peak on every shape, a single short reply included.
        case onednn
        /// OpenBLAS's `cblas_sgemm` (Debian's pthread build), the project's original backend.
        case openblas

        public var description: String { rawValue }

        /// The names accepted by `--backend` and `PRM_BACKEND`.
        public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
    }

    /// The backend when nothing chooses one.
    public static let defaultBackend = Backend.onednn

    nonisolated(unsafe) private static var storedBackend: Backend = {
        let (initial, problem) = Compute.backend(fromEnvironment: ProcessInfo.processInfo.environment["PRM_BACKEND"])
        if let problem { Log.warning(problem) }
        return initial
    }()

    nonisolated(unsafe) private static var storedThreads = Parallel.cores

    /// The sgemm backend; `PRM_BACKEND` chooses the initial one (default oneDNN).
    public static var backend: Backend {
        get { storedBackend }
        set { storedBackend = newValue }
    }

    /// Threads for compute: sgemm outside prm's parallel regions, and how many chunks those
    /// regions split into (inside them sgemm runs single-threaded, so the two levels never
    /// oversubscribe the cores). Default: every core. Several scoring workers on one host each
    /// take a share.
    public static var threads: Int {
        get { storedThreads }
        set {
            let count = max(1, newValue)
            storedThreads = count
            BLAS.openBLASThreads = count
        }
    }

    /// The backend for a `PRM_BACKEND` value: unset or empty means the default; an unknown name
    /// also means the default, with a warning to log so the typo does not go unnoticed.
    public static func backend(fromEnvironment value: String?) -> (Backend, problem: String?) {
        guard let value, !value.trimmingCharacters(in: .whitespaces).isEmpty else { return (defaultBackend, nil) }
        if let backend = Backend(rawValue: value.trimmingCharacters(in: .whitespaces).lowercased()) { return (backend, nil) }
        return (defaultBackend, "PRM_BACKEND='\(value)' is not one of \(Backend.names); using \(defaultBackend)")
    }

    /// Runs `body` with `backend` selected, restoring the previous one after (tests, benchmarks).
    public static func with<T>(backend: Backend, _ body: () throws -> T) rethrows -> T {
        let saved = self.backend
        self.backend = backend
        defer { self.backend = saved }
        return try body()
    }
}
