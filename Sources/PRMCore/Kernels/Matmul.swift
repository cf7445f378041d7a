import CBLAS
import CDNNL

/// Row-major sgemm through the selected backend (`Compute.backend`): oneDNN's `dnnl_sgemm` or
/// OpenBLAS's `cblas_sgemm`. Strided views (a head's slice of a packed QKV row) are expressed with
/// leading dimensions, never copied.
///
/// Threads: inside prm's own parallel regions (attention over (sequence, head) pairs) each sgemm
/// runs on its worker's thread alone; elsewhere it uses `Compute.threads`. oneDNN takes the count
/// from the calling thread's OpenMP setting, so it is set per call; OpenBLAS has one global count,
/// which `Parallel` lowers to 1 around its regions.
public enum BLAS {
    /// C(M,N) = alpha · op(A)(M,K) · op(B)(K,N) + beta · C.
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // C = beta·C; beta 0 overwrites (C may hold uninitialised memory, and 0·NaN is NaN).
            for row in 0..<m {
                for col in 0..<n { c[row * ldc + col] = beta == 0 ? 0 : beta * c[row * ldc + col] }
            }
            return
        }
        switch Compute.backend {
        case .onednn:
            let threads = Parallel.isInsideRegion ? 1 : Compute.threads
            if omp_get_max_threads() != threads { omp_set_num_threads(Int32(threads)) }
            // Row-major, transposes as 'N'/'T' characters; fails only on invalid arguments
            // (negative sizes, a leading dimension shorter than its row), which callers rule out.
            let status = dnnl_sgemm(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda),
                                    b, Int64(ldb), beta, c, Int64(ldc))
            precondition(status == dnnl_success, "dnnl_sgemm rejected m \(m) n \(n) k \(k) lda \(lda) ldb \(ldb) ldc \(ldc)")
        case .openblas:
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }

    /// OpenBLAS's own thread count (one for the whole process).
    static var openBLASThreads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}

/// Which way a weight matrix is stored.
public enum WeightLayout: Sendable {
    /// [OC, C], PyTorch `nn.Linear` (BERT).
    case outIn
    /// [C, OC], Hugging Face GPT-2 `Conv1D`.
    case inOut
}

/// y = x Wᵀ + b.
public enum Linear {
    /// out (N, OC) = inp (N, C) · W + bias (OC).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               N: Int, C: Int, OC: Int, layout: WeightLayout = .outIn) {
        if layout == .outIn && N <= StreamedLinear.maxRows {
            // A decoding step's few rows: the product is a pass over W (StreamedLinear).
            StreamedLinear.forward(out: out, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: OC)
            return
        }
        if let bias {
            Parallel.forRange(N, costPerItem: OC) { rows in
                for n in rows { (out + n * OC).update(from: bias, count: OC) }
            }
        }
        switch layout {
        case .outIn:
            BLAS.gemm(transB: true, m: N, n: OC, k: C, a: inp, lda: C, b: weight, ldb: C,
                      beta: bias == nil ? 0 : 1, c: out, ldc: OC)
        case .inOut:
            BLAS.gemm(m: N, n: OC, k: C, a: inp, lda: C, b: weight, ldb: OC,
                      beta: bias == nil ? 0 : 1, c: out, ldc: OC)
        }
    }

    /// Accumulates dinp (N, C), dweight (layout), dbias (OC) from dout (N, OC).
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                N: Int, C: Int, OC: Int, layout: WeightLayout = .outIn) {
        if let dinp {
            switch layout {
            case .outIn:
                BLAS.gemm(m: N, n: C, k: OC, a: dout, lda: OC, b: weight, ldb: C, beta: 1, c: dinp, ldc: C)
            case .inOut:
                BLAS.gemm(transB: true, m: N, n: C, k: OC, a: dout, lda: OC, b: weight, ldb: OC, beta: 1, c: dinp, ldc: C)
            }
        }
        if let dweight {
            switch layout {
            case .outIn:
                BLAS.gemm(transA: true, m: OC, n: C, k: N, a: dout, lda: OC, b: inp, ldb: C, beta: 1, c: dweight, ldc: C)
            case .inOut:
                BLAS.gemm(transA: true, m: C, n: OC, k: N, a: inp, lda: C, b: dout, ldb: OC, beta: 1, c: dweight, ldc: OC)
            }
        }
        if let dbias { ColumnSum.accumulate(into: dbias, dout, rows: N, columns: OC) }
    }
}

/// Batched matmul over B independent (M,K)·(K,N) products laid out with fixed strides.
public enum BatchedMatmul {
    /// out[b] (M, N) = op(A[b]) · op(B[b]).
    public static func forward(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                               batch: Int, M: Int, N: Int, K: Int, transA: Bool = false, transB: Bool = false) {
        Parallel.forEach(batch) { i in
            BLAS.gemm(transA: transA, transB: transB, m: M, n: N, k: K,
                      a: a + i * M * K, lda: transA ? M : K, b: b + i * K * N, ldb: transB ? K : N,
                      beta: 0, c: out + i * M * N, ldc: N)
        }
    }

    /// Accumulates da, db from dout, for the same flags as `forward`.
    public static func backward(da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                batch: Int, M: Int, N: Int, K: Int, transA: Bool = false, transB: Bool = false) {
        Parallel.forEach(batch) { i in
            let (ai, bi, gi) = (a + i * M * K, b + i * K * N, dout + i * M * N)
            let (dai, dbi) = (da + i * M * K, db + i * K * N)
            // d op(A) = dout · op(B)ᵀ; d op(B) = op(A)ᵀ · dout, transposed back when stored transposed.
            if transA {
                BLAS.gemm(transA: transB, transB: true, m: K, n: M, k: N, a: bi, lda: transB ? K : N,
                          b: gi, ldb: N, beta: 1, c: dai, ldc: M)
            } else {
                BLAS.gemm(transB: !transB, m: M, n: K, k: N, a: gi, lda: N, b: bi, ldb: transB ? K : N,
                          beta: 1, c: dai, ldc: K)
            }
            if transB {
                BLAS.gemm(transA: true, transB: transA, m: N, n: K, k: M, a: gi, lda: N, b: ai, ldb: transA ? M : K,
                          beta: 1, c: dbi, ldc: K)
            } else {
                BLAS.gemm(transA: !transA, m: K, n: N, k: M, a: ai, lda: transA ? M : K, b: gi, ldb: N,
                          beta: 1, c: dbi, ldc: N)
            }
        }
    }
}

/// Column sums of a (rows, columns) matrix, accumulated; parallel with per-chunk partials.
public enum ColumnSum {
    public static func accumulate(into sums: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, columns: Int) {
        let chunks = Parallel.chunkCount(rows, costPerItem: columns)
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: chunks * columns)
        partials.initialize(repeating: 0, count: chunks * columns)
        defer { partials.deallocate() }
        Parallel.forChunks(rows, costPerItem: columns) { chunk, range in
            let acc = partials + chunk * columns
            for r in range {
                let row = x + r * columns
                for c in 0..<columns { acc[c] += row[c] }
            }
        }
        for chunk in 0..<chunks {
            let acc = partials + chunk * columns
            for c in 0..<columns { sums[c] += acc[c] }
        }
    }
}
