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
        precondition(N >= 1 && N <= maxRows, "StreamedLinear takes 1…\(maxRows) rows, got \(N)")
        /// Input row g of a group of `width`: a group wider than N repeats the last row.
        func x(_ g: Int) -> UnsafePointer<Float> { inp + min(g, N - 1) * C }
        /// Writes output row r's sums for the N input rows.
        func store(_ r: Int, _ sums: SIMD8<Float>) {
            let b = bias?[r] ?? 0
            for n in 0..<N { out[n * OC + r] = sums[n] + b }
        }
        Parallel.forRange(OC, costPerItem: N * C) { rows in
            if N == 1 {
                for r in rows { out[r] = rowDot(weight + r * C, inp, C) + (bias?[r] ?? 0) }
                return
            }
            var r = rows.lowerBound
            while r < rows.upperBound {
                // An odd last row pairs with itself; its second result is dropped.
                let (w0, w1) = (weight + r * C, weight + min(r + 1, rows.upperBound - 1) * C)
                let (s0, s1) = N <= 4
                    ? widen(pairFour(w0, w1, x(0), x(1), x(2), x(3), C))
                    : pairEight(w0, w1, x(0), x(1), x(2), x(3), x(4), x(5), x(6), x(7), C)
                store(r, s0)
                if r + 1 < rows.upperBound { store(r + 1, s1) }
                r += 2
            }
        }
    }

    /// ⟨w, x⟩ with four accumulators, so the adds' latency does not serialise the stream.
    @inline(__always)
    private static func rowDot(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ C: Int) -> Float {
        var (a0, a1, a2, a3) = (Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0))
        var k = 0
        while k + 64 <= C {
            a0 = a0.addingProduct(w.vec(k), x.vec(k))
            a1 = a1.addingProduct(w.vec(k + 16), x.vec(k + 16))
            a2 = a2.addingProduct(w.vec(k + 32), x.vec(k + 32))
            a3 = a3.addingProduct(w.vec(k + 48), x.vec(k + 48))
            k += 64
        }
        while k + 16 <= C {
            a0 = a0.addingProduct(w.vec(k), x.vec(k))
            k += 16
        }
        var total = ((a0 + a1) + (a2 + a3)).laneSum
        while k < C { total += w[k] * x[k]; k += 1 }
        return total
    }

    /// ⟨w0, x_g⟩ and ⟨w1, x_g⟩ for four input rows in one pass over both weight rows.
    @inline(__always)
    private static func pairFour(_ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>,
                                 _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>,
                                 _ x2: UnsafePointer<Float>, _ x3: UnsafePointer<Float>, _ C: Int) -> (SIMD4<Float>, SIMD4<Float>) {
        var (a0, a1, a2, a3) = (Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0))
        var (b0, b1, b2, b3) = (Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0))
        var k = 0
        while k + 16 <= C {
            prm_prefetch_l2(w0 + k + prefetchDistance)
            prm_prefetch_l2(w1 + k + prefetchDistance)
            let (u, v) = (w0.vec(k), w1.vec(k))
            var xg = x0.vec(k)
            (a0, b0) = (a0.addingProduct(u, xg), b0.addingProduct(v, xg))
            xg = x1.vec(k)
            (a1, b1) = (a1.addingProduct(u, xg), b1.addingProduct(v, xg))
            xg = x2.vec(k)
            (a2, b2) = (a2.addingProduct(u, xg), b2.addingProduct(v, xg))
            xg = x3.vec(k)
            (a3, b3) = (a3.addingProduct(u, xg), b3.addingProduct(v, xg))
            k += 16
        }
        var s0 = SIMD4<Float>(a0.laneSum, a1.laneSum, a2.laneSum, a3.laneSum)
        var s1 = SIMD4<Float>(b0.laneSum, b1.laneSum, b2.laneSum, b3.laneSum)
        while k < C {
            let xk = SIMD4<Float>(x0[k], x1[k], x2[k], x3[k])
            s0 += w0[k] * xk
            s1 += w1[k] * xk
            k += 1
        }
        return (s0, s1)
    }

    /// `pairFour` for eight input rows: each load of W feeds eight multiply-adds.
    @inline(__always)
    private static func pairEight(_ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>,
                                  _ x0: UnsafePointer<Float>, _ x1: UnsafePointer<Float>,
                                  _ x2: UnsafePointer<Float>, _ x3: UnsafePointer<Float>,
                                  _ x4: UnsafePointer<Float>, _ x5: UnsafePointer<Float>,
                                  _ x6: UnsafePointer<Float>, _ x7: UnsafePointer<Float>, _ C: Int) -> (SIMD8<Float>, SIMD8<Float>) {
        var (a0, a1, a2, a3) = (Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0))
        var (a4, a5, a6, a7) = (Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0))
        var (b0, b1, b2, b3) = (Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0))
        var (b4, b5, b6, b7) = (Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0), Vec(repeating: 0))
        var k = 0
        while k + 16 <= C {
            prm_prefetch_l2(w0 + k + prefetchDistance)
            prm_prefetch_l2(w1 + k + prefetchDistance)
            let (u, v) = (w0.vec(k), w1.vec(k))
            var xg = x0.vec(k)
            (a0, b0) = (a0.addingProduct(u, xg), b0.addingProduct(v, xg))
            xg = x1.vec(k)
            (a1, b1) = (a1.addingProduct(u, xg), b1.addingProduct(v, xg))
            xg = x2.vec(k)
            (a2, b2) = (a2.addingProduct(u, xg), b2.addingProduct(v, xg))
            xg = x3.vec(k)
            (a3, b3) = (a3.addingProduct(u, xg), b3.addingProduct(v, xg))
            xg = x4.vec(k)
            (a4, b4) = (a4.addingProduct(u, xg), b4.addingProduct(v, xg))
            xg = x5.vec(k)
            (a5, b5) = (a5.addingProduct(u, xg), b5.addingProduct(v, xg))
            xg = x6.vec(k)
            (a6, b6) = (a6.addingProduct(u, xg), b6.addingProduct(v, xg))
            xg = x7.vec(k)
            (a7, b7) = (a7.addingProduct(u, xg), b7.addingProduct(v, xg))
            k += 16
        }
        var s0 = SIMD8<Float>(a0.laneSum, a1.laneSum, a2.laneSum, a3.laneSum, a4.laneSum, a5.laneSum, a6.laneSum, a7.laneSum)
        var s1 = SIMD8<Float>(b0.laneSum, b1.laneSum, b2.laneSum, b3.laneSum, b4.laneSum, b5.laneSum, b6.laneSum, b7.laneSum)
        while k < C {
            let xk = SIMD8<Float>(x0[k], x1[k], x2[k], x3[k], x4[k], x5[k], x6[k], x7[k])
            s0 += w0[k] * xk
            s1 += w1[k] * xk
            k += 1
        }
        return (s0, s1)
    }

    /// Four sums in the low lanes of eight.
    @inline(__always)
    private static func widen(_ pair: (SIMD4<Float>, SIMD4<Float>)) -> (SIMD8<Float>, SIMD8<Float>) {
        (SIMD8(lowHalf: pair.0, highHalf: .zero), SIMD8(lowHalf: pair.1, highHalf: .zero))
    }
}
