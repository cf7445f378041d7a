/// GELU in its two published forms: exact (erf, BERT's `gelu`) and the tanh approximation
/// (GPT-2's `gelu_new`).
public enum GELU {
    public enum Form: String, Sendable {
        case erf, tanh
    }

    static let invSqrt2: Float = 0.707_106_77
    static let invSqrt2Pi: Float = 0.398_942_28
    static let sqrt2OverPi: Float = 0.797_884_56
    static let cubic: Float = 0.044_715

    /// out = gelu(inp), element-wise over `count` floats.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int, form: Form) {
        Parallel.forRange(count, costPerItem: 8) { range in
            switch form {
            case .erf: for i in range { out[i] = value(inp[i], .erf) }
            case .tanh: for i in range { out[i] = value(inp[i], .tanh) }
            }
        }
    }

    /// Inference: x (N, I) ← gelu(x + bias) in place, the FFN's bias and activation in one pass.
    public static func forwardAddingBias(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, N: Int, I: Int, form: Form) {
        Parallel.forRange(N, costPerItem: 8 * I) { rows in
            for n in rows {
                let row = x + n * I
                switch form {
                case .erf: for i in 0..<I { row[i] = value(row[i] + bias[i], .erf) }
                case .tanh: for i in 0..<I { row[i] = value(row[i] + bias[i], .tanh) }
                }
            }
        }
    }

    /// x ← gelu(x) in place over `count` floats, on the calling thread: a pass fused into a
    /// caller's own parallel loop (the int8 dequantization of an FFN's first layer).
    public static func apply(_ x: UnsafeMutablePointer<Float>, count: Int, form: Form) {
        switch form {
        case .erf: for i in 0..<count { x[i] = value(x[i], .erf) }
        case .tanh: for i in 0..<count { x[i] = value(x[i], .tanh) }
        }
    }

    /// dinp += dout · gelu'(inp).
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, count: Int, form: Form) {
        Parallel.forRange(count, costPerItem: 8) { range in
            switch form {
            case .erf: for i in range { dinp[i] += dout[i] * derivative(inp[i], .erf) }
            case .tanh: for i in range { dinp[i] += dout[i] * derivative(inp[i], .tanh) }
            }
        }
    }

    @inline(__always)
    static func value(_ x: Float, _ form: Form) -> Float {
        let half = 0.5 * x
        switch form {
        case .erf:
            return half * (1 + VectorMath.erf(x * invSqrt2))
        case .tanh:
            return half * (1 + VectorMath.tanh(tanhArgument(x)))
        }
    }

    /// √(2/π)·(x + 0.044715·x³), the tanh form's argument.
    @inline(__always)
    static func tanhArgument(_ x: Float) -> Float {
        sqrt2OverPi * (x + cubic * x * x * x)
    }

    @inline(__always)
    static func derivative(_ x: Float, _ form: Form) -> Float {
        switch form {
        case .erf:
            let cdf = 0.5 * (1 + VectorMath.erf(x * invSqrt2))
            return cdf + x * invSqrt2Pi * VectorMath.exp(-0.5 * x * x)
        case .tanh:
            let t = VectorMath.tanh(tanhArgument(x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * sqrt2OverPi * (1 + 3 * cubic * x * x)
        }
    }
}
