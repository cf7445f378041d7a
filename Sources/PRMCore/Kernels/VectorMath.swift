/// Branch-free transcendental functions for the element-wise passes around each sgemm, where a
/// naive port loses most of its time (DESIGN.md, performance context). They are written as scalar
/// code with no calls and no branches so LLVM's loop vectorizer turns the loops that use them into
/// SIMD code; Swift's generic SIMD-type operations (clamped, replacing, rounded, Int conversion)
/// lower lane by lane through memory and were measured 3–5× slower here.
public enum VectorMath {
    static let magic: Float = 12_582_912  // 1.5 · 2²³
    static let magicBits: Int32 = 0x4B40_0000

    /// e^x, Cephes-style: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n by
    /// building the float exponent. Relative error ~2e-7 over [-87, 88]; beyond that clamps.
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let clamped = Swift.min(Swift.max(x, -87.3), 88.3)
        // Adding 1.5·2²³ rounds to nearest and leaves n in the low mantissa bits.
        let shifted = clamped * 1.442_695_04 + magic
        let n = shifted - magic
        // ln2 split in two so r keeps full precision.
        var r = clamped - n * 0.693_359_375
        r = r + n * 2.121_944_4e-4
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_6e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_1e-1
        p = p * (r * r) + r + 1
        let exponent = (Int32(bitPattern: shifted.bitPattern) &- magicBits &+ 127) &<< 23
        return p * Float(bitPattern: UInt32(bitPattern: exponent))
    }

    /// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), odd-extended.
    @inline(__always)
    public static func erf(_ x: Float) -> Float {
        let a = x.magnitude
        let t = 1 / (1 + 0.327_591_1 * a)
        var poly: Float = 1.061_405_429
        poly = poly * t - 1.453_152_027
        poly = poly * t + 1.421_413_741
        poly = poly * t - 0.284_496_736
        poly = poly * t + 0.254_829_592
        poly = poly * t
        let y = 1 - poly * exp(-(a * a))
        return x < 0 ? -y : y
    }

    /// tanh(x) = 1 - 2/(e^{2x}+1), saturating cleanly at ±1.
    @inline(__always)
    public static func tanh(_ x: Float) -> Float {
        1 - 2 / (exp(2 * x) + 1)
    }
}

/// Sums `count` floats with 16 independent accumulators (a plain float loop cannot be reordered
/// for SIMD without fast-math, so the lanes are written out).
@inline(__always)
func sum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
    var lanes = Vec(repeating: 0)
    var i = 0
    while i + 16 <= count {
        lanes += x.vec(i)
        i += 16
    }
    var total = lanes.laneSum
    while i < count { total += x[i]; i += 1 }
    return total
}

/// The largest of `count` floats (−∞ for none), 16 lanes at a time: `replace(with:where:)` on
/// a comparison lowers to one vmaxps, where a scalar `max` loop stays scalar (its NaN rules
/// forbid reordering) and `pointwiseMax` lowers lane by lane.
@inline(__always)
func maximum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
    var lanes = Vec(repeating: -.infinity)
    var i = 0
    while i + 16 <= count {
        let v = x.vec(i)
        lanes.replace(with: v, where: v .> lanes)
        i += 16
    }
    var result = -Float.infinity
    for lane in 0..<16 where lanes[lane] > result { result = lanes[lane] }
    while i < count {
        if x[i] > result { result = x[i] }
        i += 1
    }
    return result
}

/// ⟨a, b⟩ over `count` floats, 16 lanes at a time (a plain float loop stays scalar), with four
/// accumulators so the multiply-adds' latency does not serialise a long stream (a weight row).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
    var (s0, s1, s2, s3) = (Vec.zero, Vec.zero, Vec.zero, Vec.zero)
    var i = 0
    while i + 64 <= count {
        s0 = s0.addingProduct(a.vec(i), b.vec(i))
        s1 = s1.addingProduct(a.vec(i + 16), b.vec(i + 16))
        s2 = s2.addingProduct(a.vec(i + 32), b.vec(i + 32))
        s3 = s3.addingProduct(a.vec(i + 48), b.vec(i + 48))
        i += 64
    }
    while i + 16 <= count {
        s0 = s0.addingProduct(a.vec(i), b.vec(i))
        i += 16
    }
    var total = ((s0 + s1) + (s2 + s3)).laneSum
    while i < count { total += a[i] * b[i]; i += 1 }
    return total
}

/// 16 floats (AVX-512 width; split on narrower machines). Plain arithmetic and squareRoot on it
/// lower to vector instructions; see VectorMath for what does not.
public typealias Vec = SIMD16<Float>

extension VectorMath {
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

extension SIMD16 where Scalar == Float {
    /// The sum of the 16 lanes by halving: four vector adds, inlined. The standard library's
    /// `sum()` is an out-of-line call that adds lane by lane; in a decoding step, where every dot
    /// product of a head and every weight row ends in one, it took a tenth of the time.
    @inline(__always) public var laneSum: Float {
        let eight = lowHalf + highHalf
        let four = eight.lowHalf + eight.highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }
}

/// A scalar lifted into one SIMD lane so scalar tails use the same formulas as the bodies.
@inline(__always) func lane(_ x: Float) -> Vec { Vec(repeating: x) }
