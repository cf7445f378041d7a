import XCTest
import PRMTestSupport
@testable import PRMCore

/// The sgemm wrapper on each backend against a float64 product, and the threading rules around it:
/// sgemm inside prm's parallel regions runs on its worker alone, regions never nest, and
/// `Compute.threads` bounds both.
final class BackendTests: XCTestCase {
    /// Every transpose combination, strided leading dimensions (a head's slice of a QKV row),
    /// alpha and beta ≠ 0, odd sizes, and one product large enough to be threaded.
    func testGemmMatchesFloat64OnEveryBackend() {
        var rng = RandomSource(seed: 21)
        let shapes = [(1, 1, 1), (5, 7, 3), (13, 1, 9), (30, 61, 32), (97, 130, 71)]
        TestSupport.eachBackend { backend in
            for (m, n, k) in shapes {
                for transA in [false, true] {
                    for transB in [false, true] {
                        // Stored shapes: A (m, k) or (k, m), B (k, n) or (n, k), each row padded by 3.
                        let (aRows, aCols) = transA ? (k, m) : (m, k), (bRows, bCols) = transB ? (n, k) : (k, n)
                        let (lda, ldb, ldc) = (aCols + 3, bCols + 3, n + 3)
                        let a = (0..<aRows * lda).map { _ in rng.nextNormal() }
                        let b = (0..<bRows * ldb).map { _ in rng.nextNormal() }
                        let c0 = (0..<m * ldc).map { _ in rng.nextNormal() }
                        var c = c0
                        let (alpha, beta): (Float, Float) = (0.75, -0.5)
                        c.withUnsafeMutableBufferPointer { cp in
                            BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                      b: b, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc)
                        }
                        var worst = 0.0
                        for i in 0..<m {
                            for j in 0..<n {
                                var s = 0.0
                                for p in 0..<k {
                                    let av = Double(transA ? a[p * lda + i] : a[i * lda + p])
                                    let bv = Double(transB ? b[j * ldb + p] : b[p * ldb + j])
                                    s += av * bv
                                }
                                let expected = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
                                worst = max(worst, abs(Double(c[i * ldc + j]) - expected))
                            }
                            // Padding columns of C are never written.
                            for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j], "\(backend) wrote C's padding") }
                        }
                        XCTAssertLessThan(worst, 1e-4 * Double(max(k, 1)).squareRoot(),
                                          "\(backend) m \(m) n \(n) k \(k) transA \(transA) transB \(transB)")
                    }
                }
            }
        }
    }

    /// beta = 0 must overwrite C even when it holds NaN (uninitialised buffers), on every backend.
    func testBetaZeroOverwritesNaN() {
        TestSupport.eachBackend { backend in
            let a: [Float] = [1, 2, 3, 4], b: [Float] = [1, 0, 0, 1]
            var c = [Float](repeating: .nan, count: 4)
            c.withUnsafeMutableBufferPointer { BLAS.gemm(m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, beta: 0, c: $0.baseAddress!, ldc: 2) }
            XCTAssertEqual(c, a, "\(backend)")
            c = [Float](repeating: .nan, count: 4)
            c.withUnsafeMutableBufferPointer { BLAS.gemm(m: 2, n: 2, k: 0, a: a, lda: 2, b: b, ldb: 2, beta: 0, c: $0.baseAddress!, ldc: 2) }
            XCTAssertEqual(c, [0, 0, 0, 0], "\(backend) k = 0")
        }
    }

    /// Many small sgemms from inside a parallel region (attention's pattern) give the same results
    /// as the same products run one by one outside it, on every backend.
    func testGemmsInsideParallelRegionsMatchSerialOnes() {
        var rng = RandomSource(seed: 5)
        let (items, m, n, k) = (48, 17, 19, 23)
        let a = (0..<items * m * k).map { _ in rng.nextNormal() }, b = (0..<items * k * n).map { _ in rng.nextNormal() }
        TestSupport.eachBackend { backend in
            var serial = [Float](repeating: 0, count: items * m * n), parallel = serial
            let inside = Box<[Bool]>([])
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    let (a, b) = (a.baseAddress!, b.baseAddress!)
                    serial.withUnsafeMutableBufferPointer { out in
                        for i in 0..<items {
                            BLAS.gemm(m: m, n: n, k: k, a: a + i * m * k, lda: k, b: b + i * k * n, ldb: n,
                                      beta: 0, c: out.baseAddress! + i * m * n, ldc: n)
                        }
                    }
                    parallel.withUnsafeMutableBufferPointer { out in
                        let c = out.baseAddress!
                        Parallel.forEach(items) { i in
                            inside.update { $0.append(Parallel.isInsideRegion) }
                            BLAS.gemm(m: m, n: n, k: k, a: a + i * m * k, lda: k, b: b + i * k * n, ldb: n, beta: 0, c: c + i * m * n, ldc: n)
                        }
                    }
                }
            }
            XCTAssertEqual(Set(inside.value), Parallel.workers > 1 ? [true] : [false], "\(backend): items run marked as region work")
            XCTAssertEqual(serial, parallel, "\(backend)")
            XCTAssertFalse(Parallel.isInsideRegion, "\(backend): the calling thread must leave the region unmarked")
        }
    }

    /// Inside a region nothing nests (one worker), OpenBLAS's global thread count is 1 while a
    /// region runs and restored after; `Compute.threads` bounds the workers.
    func testRegionsDoNotNestAndRespectComputeThreads() {
        TestSupport.eachBackend { backend in
            let saved = Compute.threads
            defer { Compute.threads = saved }
            Compute.threads = 2
            let seen = Box<Set<Int>>([]), nested = Box<[Int]>([]), blasThreads = Box<[Int]>([])
            Parallel.forEachItem(64) { worker, _ in
                seen.update { $0.insert(worker) }
                nested.update { $0.append(Parallel.workers) }
                if backend == .openblas { blasThreads.update { $0.append(BLAS.openBLASThreads) } }
            }
            XCTAssertTrue(seen.value.isSubset(of: [0, 1]), "\(backend): workers \(seen.value)")
            XCTAssertEqual(Set(nested.value), [1], "\(backend): a region inside a region must run serially")
            if backend == .openblas {
                XCTAssertEqual(Set(blasThreads.value), [1], "OpenBLAS must be single-threaded inside a region")
                XCTAssertEqual(BLAS.openBLASThreads, 2, "OpenBLAS's thread count must be restored after the region")
            }

            Compute.threads = 1
            let one = Box<Set<Int>>([])
            Parallel.forEachItem(64) { worker, _ in one.update { $0.insert(worker) } }
            XCTAssertEqual(one.value, [0], "\(backend): Compute.threads = 1 runs regions on the caller alone")
            XCTAssertEqual(Parallel.chunkCount(1_000_000, costPerItem: 100), 1)
            if backend == .openblas { XCTAssertEqual(BLAS.openBLASThreads, 1) }
        }
    }

    func testBackendFromEnvironment() {
        XCTAssertEqual(Compute.backend(fromEnvironment: nil).0, .onednn)
        XCTAssertEqual(Compute.backend(fromEnvironment: "").0, .onednn)
        XCTAssertEqual(Compute.backend(fromEnvironment: "openblas").0, .openblas)
        XCTAssertEqual(Compute.backend(fromEnvironment: " OneDNN ").0, .onednn)
        XCTAssertNil(Compute.backend(fromEnvironment: "openblas").problem)
        let (fallback, problem) = Compute.backend(fromEnvironment: "mkl")
        XCTAssertEqual(fallback, .onednn)
        XCTAssertEqual(problem, "PRM_BACKEND='mkl' is not one of onednn, openblas; using onednn")
    }
}

/// A value shared by the workers of a region, updated under a lock.
private final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout T) -> Void) { lock.lock(); defer { lock.unlock() }; body(&stored) }
}
