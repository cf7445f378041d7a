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
            let x = inp + range.lowerBound, y = out + range.lowerBound
            VectorMath.map(range.count, { i in y.setVec(i, value(x.vec(i), form)) },
                           { i in y[i] = value(lane(x[i]), form)[0] })
        }
    }

    /// dinp += dout · gelu'(inp).
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, count: Int, form: Form) {
        Parallel.forRange(count, costPerItem: 8) { range in
            let x = inp + range.lowerBound, dy = dout + range.lowerBound, dx = dinp + range.lowerBound
            VectorMath.map(range.count, { i in dx.setVec(i, dx.vec(i) + dy.vec(i) * derivative(x.vec(i), form)) },
                           { i in dx[i] += dy[i] * derivative(lane(x[i]), form)[0] })
        }
    }

    @inline(__always)
    static func value(_ x: Vec, _ form: Form) -> Vec {
        let half: Vec = 0.5 * x
        switch form {
        case .erf:
            let e: Vec = VectorMath.erf(x * invSqrt2)
            return half * (1 + e)
        case .tanh:
            let t: Vec = VectorMath.tanh(tanhArgument(x))
            return half * (1 + t)
        }
    }

    /// √(2/π)·(x + 0.044715·x³), the tanh form's argument.
    @inline(__always)
    static func tanhArgument(_ x: Vec) -> Vec {
        let cube: Vec = x * x * x
        return sqrt2OverPi * (x + cubic * cube)
    }

    @inline(__always)
    static func derivative(_ x: Vec, _ form: Form) -> Vec {
        switch form {
        case .erf:
            let cdf: Vec = 0.5 * (1 + VectorMath.erf(x * invSqrt2))
            let square: Vec = x * x
            let pdf: Vec = invSqrt2Pi * VectorMath.exp(-0.5 * square)
            return cdf + x * pdf
        case .tanh:
            let t: Vec = VectorMath.tanh(tanhArgument(x))
            let square: Vec = x * x
            let inner: Vec = sqrt2OverPi * (1 + 3 * cubic * square)
            let sech2: Vec = 1 - t * t
            return 0.5 * (1 + t) + 0.5 * x * sech2 * inner
        }
    }
}
