import CIntrinsics

/// out (N, OC) = inp (N, C) · Wᵀ + bias for the few rows of a decoding step (N ≤ `maxRows`, W
/// stored [OC, C]), where a product is a pass over the weights rather than arithmetic.
///
/// Each core takes a contiguous half of W's rows and reads it once, front to back, multiplying
/// each row into every input row while it is in L1. sgemm's small-M paths (oneDNN's and
/// OpenBLAS's alike) read a decoding step's weights at about half the machine's bandwidth; these
/// loops read them at 90–95 % of it at one input row and overlap the reads with the arithmetic at
/// 2–8 (bench/results/decode_profile.md, with the probe that chose each form):
/// - one input row: one W row at a time, so the reads are one sequential stream, which the
///   hardware prefetcher follows best (interleaving rows alone halved the speed);
/// - 2–8 input rows: two W rows at a time against every input row (each load of W feeds 8 or 16
///   multiply-adds), with a software prefetch into L2 16 KB ahead; without it a core waits for
///   memory after every stretch of weights instead of computing meanwhile (30.6 → 15.1 ms per
///   8-sample SmolLM2 step in the probe).
public enum StreamedLinear {
    /// The most input rows a product takes this path for: beyond it the product is arithmetic,
    /// which sgemm's blocking does better.
    public static let maxRows = 8

    /// How far ahead of its reads (in floats) a few-row product prefetches W.
    static let prefetchDistance = 4096

    /// out (N, OC) = inp (N, C) · Wᵀ + bias (OC), overwriting out.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, N: Int, C: Int, OC: Int) {
        precondition(N >= 0 && N <= maxRows, "StreamedLinear takes 0…\(maxRows) rows, got \(N)")
        guard N > 0 else { return }  // an empty batch (a scorer's warm-up can send one)
        /// Input row g; a kernel wider than N repeats the last row.
        func x(_ g: Int) -> UnsafePointer<Float> { inp + min(g, N - 1) * C }
        /// Writes output row r's sums for the N input rows.
        func store(_ r: Int, _ sums: SIMD8<Float>) {
            let b = bias?[r] ?? 0
            for n in 0..<N { out[n * OC + r] = sums[n] + b }
        }
        Parallel.forRange(OC, costPerItem: N * C) { rows in
            if N == 1 {
                for r in rows { out[r] = dot(weight + r * C, inp, C) + (bias?[r] ?? 0) }
                return
            }
            var r = rows.lowerBound
            while r < rows.upperBound {
                // An odd last row pairs with itself; its second result is dropped.
                let (w0, w1) = (weight + r * C, weight + min(r + 1, rows.upperBound - 1) * C)
                let (s0, s1) = N <= 4 ? pair(w0, w1, inputs: 4, x, C) : pair(w0, w1, inputs: 8, x, C)
                store(r, s0)
                if r + 1 < rows.upperBound { store(r + 1, s1) }
                r += 2
            }
        }
    }

    /// ⟨w0, x_g⟩ and ⟨w1, x_g⟩ for input rows g < `inputs` (4 or 8, a constant at each call, so
    /// the unused half folds away) in one pass over both weight rows: each load of W feeds
    /// `inputs` multiply-adds. Lanes from `inputs` up are zero.
    @inline(__always)
    private static func pair(_ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>, inputs: Int,
                             _ x: (Int) -> UnsafePointer<Float>, _ C: Int) -> (SIMD8<Float>, SIMD8<Float>) {
        let (x0, x1, x2, x3, x4, x5, x6, x7) = (x(0), x(1), x(2), x(3), x(4), x(5), x(6), x(7))
        var (a0, a1, a2, a3, a4, a5, a6, a7) = (Vec.zero, Vec.zero, Vec.zero, Vec.zero, Vec.zero, Vec.zero, Vec.zero, Vec.zero)
        var (b0, b1, b2, b3, b4, b5, b6, b7) = (Vec.zero, Vec.zero, Vec.zero, Vec.zero, Vec.zero, Vec.zero, Vec.zero, Vec.zero)
        /// Adds u·x and v·x at k to one input row's pair of accumulators.
        @inline(__always) func add(_ a: inout Vec, _ b: inout Vec, _ u: Vec, _ v: Vec, _ x: UnsafePointer<Float>, _ k: Int) {
            let xk = x.vec(k)
            (a, b) = (a.addingProduct(u, xk), b.addingProduct(v, xk))
        }
        var k = 0
        while k + 16 <= C {
            prm_prefetch_l2(w0 + k + prefetchDistance)
            prm_prefetch_l2(w1 + k + prefetchDistance)
            let (u, v) = (w0.vec(k), w1.vec(k))
            add(&a0, &b0, u, v, x0, k)
            add(&a1, &b1, u, v, x1, k)
            add(&a2, &b2, u, v, x2, k)
            add(&a3, &b3, u, v, x3, k)
            if inputs > 4 {
                add(&a4, &b4, u, v, x4, k)
                add(&a5, &b5, u, v, x5, k)
                add(&a6, &b6, u, v, x6, k)
                add(&a7, &b7, u, v, x7, k)
            }
            k += 16
        }
        var s0 = SIMD8<Float>(a0.laneSum, a1.laneSum, a2.laneSum, a3.laneSum, a4.laneSum, a5.laneSum, a6.laneSum, a7.laneSum)
        var s1 = SIMD8<Float>(b0.laneSum, b1.laneSum, b2.laneSum, b3.laneSum, b4.laneSum, b5.laneSum, b6.laneSum, b7.laneSum)
        while k < C {
            let xk = SIMD8<Float>(x0[k], x1[k], x2[k], x3[k], inputs > 4 ? x4[k] : 0, inputs > 4 ? x5[k] : 0, inputs > 4 ? x6[k] : 0,
                                  inputs > 4 ? x7[k] : 0)
            s0 += w0[k] * xk
            s1 += w1[k] * xk
            k += 1
        }
        return (s0, s1)
    }
}
