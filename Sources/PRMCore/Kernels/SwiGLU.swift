/// The Llama MLP's gate: out = silu(gate) · up, with silu(g) = g · σ(g).
public enum SwiGLU {
    /// out (N, I) from the two halves of gateUp (N, 2I): gate in columns 0..<I, up in I..<2I.
    public static func forward(out: UnsafeMutablePointer<Float>, gateUp: UnsafePointer<Float>, N: Int, I: Int) {
        Parallel.forRange(N, costPerItem: 8 * I) { rows in
            for n in rows {
                let (g, u, o) = (gateUp + n * 2 * I, gateUp + n * 2 * I + I, out + n * I)
                for i in 0..<I { o[i] = g[i] / (1 + VectorMath.exp(-g[i])) * u[i] }
            }
        }
    }

    /// Accumulates dgateUp (N, 2I) from dout (N, I): d up = dout · silu(g), d gate = dout · up · silu'(g)
    /// with silu'(g) = σ(g) · (1 + g · (1 − σ(g))).
    public static func backward(dgateUp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, gateUp: UnsafePointer<Float>, N: Int, I: Int) {
        Parallel.forRange(N, costPerItem: 10 * I) { rows in
            for n in rows {
                let (g, u, d) = (gateUp + n * 2 * I, gateUp + n * 2 * I + I, dout + n * I)
                let (dg, du) = (dgateUp + n * 2 * I, dgateUp + n * 2 * I + I)
                for i in 0..<I {
                    let sigma = 1 / (1 + VectorMath.exp(-g[i]))
                    du[i] += d[i] * g[i] * sigma
                    dg[i] += d[i] * u[i] * sigma * (1 + g[i] * (1 - sigma))
                }
            }
        }
    }
}
