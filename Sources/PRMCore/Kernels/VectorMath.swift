/// Vectorised transcendental functions on SIMD16<Float> (AVX-512 width; the compiler splits it on
/// narrower machines). The element-wise passes around each sgemm are where a naive port loses
/// most of its time (DESIGN.md, performance context), so exp/erf/tanh must not be scalar libm calls.
public typealias Vec = SIMD16<Float>

public enum VectorMath {
    /// e^x, Cephes-style: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n by
    /// building the float exponent. Relative error ~2e-7 over [-87, 88]; beyond that clamps.
    @inline(__always)
    public static func exp(_ x: Vec) -> Vec {
        let clamped = x.clamped(lowerBound: Vec(repeating: -87.3), upperBound: Vec(repeating: 88.3))
        let n = (clamped * 1.442_695_04).rounded(.toNearestOrEven)
        // ln2 split in two so r keeps full precision.
        var r = clamped - n * 0.693_359_375
        r = r + n * 2.121_944_4e-4
        var p = Vec(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_6e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_1e-1
        p = p * r * r + r + 1
        let exponent = SIMD16<Int32>(truncatingIfNeeded: SIMD16<Int32>(n) &+ 127) &<< 23
        return p * unsafeBitCast(exponent, to: Vec.self)
    }

    /// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), odd-extended.
    @inline(__always)
    public static func erf(_ x: Vec) -> Vec {
        let a: Vec = x.replacing(with: -x, where: x .< 0)
        let denominator: Vec = 1 + 0.327_591_1 * a
        let t: Vec = 1 / denominator
        var poly = Vec(repeating: 1.061_405_429)
        poly = poly * t - 1.453_152_027
        poly = poly * t + 1.421_413_741
        poly = poly * t - 0.284_496_736
        poly = poly * t + 0.254_829_592
        poly = poly * t
        let gauss: Vec = exp(-(a * a))
        let y: Vec = 1 - poly * gauss
        return y.replacing(with: -y, where: x .< 0)
    }

    /// tanh(x) = 1 - 2/(e^{2x}+1), saturating cleanly at ±1.
    @inline(__always)
    public static func tanh(_ x: Vec) -> Vec {
        let e: Vec = exp(2 * x)
        return 1 - 2 / (e + 1)
    }

    /// Applies `vector` to 16-wide blocks of `count` floats and `scalar` to the tail.
    @inline(__always)
    public static func map(_ count: Int, _ vector: (Int) -> Void, _ scalar: (Int) -> Void) {
        var i = 0
        while i + 16 <= count { vector(i); i += 16 }
        while i < count { scalar(i); i += 1 }
    }
}

extension UnsafePointer where Pointee == Float {
    @inline(__always) func vec(_ i: Int) -> Vec { UnsafeRawPointer(self + i).loadUnaligned(as: Vec.self) }
}

extension UnsafeMutablePointer where Pointee == Float {
    @inline(__always) func vec(_ i: Int) -> Vec { UnsafeRawPointer(self + i).loadUnaligned(as: Vec.self) }
    @inline(__always) func setVec(_ i: Int, _ v: Vec) { UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: Vec.self) }
}

/// A scalar lifted into one SIMD lane so the scalar tails use the same formulas as the bodies.
@inline(__always) func lane(_ x: Float) -> Vec { Vec(repeating: x) }
