import Foundation

/// Learned log-counts over a span of each sequence's rows:
///   out[b, k] = log(1 + Σ_{t ∈ span_b} softplus(x_t · w_k + a_k))
/// for K learned detectors (w_k, a_k). A detector that fires on every token counts the span's
/// tokens; one that fires on some kind of token counts those. A mean over rows cannot carry such
/// amounts (it is invariant to repeating the span), so this is what a pooled state adds to say
/// "how long" or "how many" in a form a linear read-out can use: the log makes a ratio of two
/// amounts a difference, which is what a pairwise preference compares.
public enum LogCountPool {
    /// out (B, K) for inp (N, C), weight (K, C), bias (K), sequence b counting the packed rows
    /// spans[b]. Keeps z (N, K), the detectors' pre-activations on every row, and sums (B, K),
    /// each span's Σ softplus, for `backward`.
    public static func forward(out: UnsafeMutablePointer<Float>, z: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>,
                               inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               spans: [Range<Int>], N: Int, C: Int, K: Int) {
        // Every row, not only the spans': one sgemm, and K is small next to C.
        Linear.forward(out: z, inp: inp, weight: weight, bias: bias, N: N, C: C, OC: K)
        for (b, span) in spans.enumerated() {
            let s = sums + b * K
            s.update(repeating: 0, count: K)
            for t in span {
                let zt = z + t * K
                for k in 0..<K { s[k] += Logistic.softplus(zt[k]) }
            }
            for k in 0..<K { out[b * K + k] = Foundation.log1p(s[k]) }
        }
    }

    /// Accumulates dinp (N, C), dweight (K, C), dbias (K) from dout (B, K); dz (N, K) is scratch.
    /// d out[b,k] / d z[t,k] = σ(z[t,k]) / (1 + sums[b,k]) for t in span b, 0 elsewhere.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dz: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                z: UnsafePointer<Float>, sums: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, spans: [Range<Int>], N: Int, C: Int, K: Int) {
        dz.update(repeating: 0, count: N * K)
        for (b, span) in spans.enumerated() {
            for t in span {
                for k in 0..<K { dz[t * K + k] = dout[b * K + k] / (1 + sums[b * K + k]) * Logistic.sigmoid(z[t * K + k]) }
            }
        }
        Linear.backward(dinp: dinp, dweight: dweight, dbias: dbias, dout: dz, inp: inp, weight: weight, N: N, C: C, OC: K)
    }
}
