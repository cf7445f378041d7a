import CDNNL

/// One linear layer's weight matrix prepared once, at load, for low-precision inference:
/// out (rows, O) = inp (rows, C) · Wᵀ (+ bias), W a PyTorch [O, C] `nn.Linear` weight.
///
/// int8: W per output channel, symmetric: s_w[o] = max|W[o,:]| / 127, q = round(W / s_w) ∈ [−127, 127].
/// Each activation row per call, asymmetric u8: its range [lo, hi] widened to hold 0 (so 0 is
/// exact), s_a = (hi − lo) / 255, zero point z = round(−lo / s_a), a = clamp(round(x / s_a) + z, 0, 255).
/// oneDNN accumulates acc = Σ_k a_k·q_k in s32 on VNNI, and here out = s_a·(s_w[o]·acc − z·s_w[o]·Σ_k q_k) + b[o]:
/// the row's zero point comes off through the weights' sums, since oneDNN 2.6 takes one zero point
/// per tensor, not per row.
///
/// bf16: W rounded to bf16 once; the activations rounded to bf16 per call (round to nearest even);
/// oneDNN's AVX512_BF16 matmul accumulates and writes fp32.
///
/// With `gelu` (an FFN's first layer) out = gelu(inp · Wᵀ + bias), in the same pass that writes
/// out: at bf16 oneDNN's eltwise post-op after its bias; at int8 in the dequantization loop, since
/// oneDNN 2.6's int8 matmul can scale its output per column only, not by the per-row activation
/// scale and zero point that must come first.
public final class LowPrecisionLinear {
    public let precision: Precision
    public let inputs: Int, outputs: Int
    /// GELU applied after the bias, nil for none.
    public let gelu: GELU.Form?
    private let matmul: DNNLMatmul
    /// W in the primitive's own layout (s8 or bf16).
    private let packed: UnsafeMutableRawPointer
    /// int8 only: s_w[o] and s_w[o]·Σ_k q[o, k].
    private let weightScales: UnsafeMutablePointer<Float>?
    private let scaledWeightSums: UnsafeMutablePointer<Float>?

    /// Bytes this layer keeps (its packed matrix and int8 scales), for memory accounting.
    public var bytes: Int { matmul.packedBytes + (weightScales == nil ? 0 : 8 * outputs) }

    public init(weight: UnsafePointer<Float>, outputs: Int, inputs: Int, precision: Precision, gelu: GELU.Form? = nil) {
        precondition(precision != .fp32, "fp32 runs on BLAS.gemm, not a LowPrecisionLinear")
        self.precision = precision
        self.inputs = inputs
        self.outputs = outputs
        self.gelu = gelu
        let count = outputs * inputs
        switch precision {
        case .int8:
            matmul = .shared(source: dnnl_u8, weights: dnnl_s8, destination: dnnl_s32, k: inputs, n: outputs)
            packed = .allocate(byteCount: matmul.packedBytes, alignment: 64)
            let q = UnsafeMutablePointer<Int8>.allocate(capacity: count)
            defer { q.deallocate() }
            let scales = UnsafeMutablePointer<Float>.allocate(capacity: outputs), sums = UnsafeMutablePointer<Float>.allocate(capacity: outputs)
            for o in 0..<outputs {
                let (scale, sum) = Self.quantizeChannel(weight + o * inputs, count: inputs, into: q + o * inputs)
                scales[o] = scale
                sums[o] = scale * Float(sum)
            }
            matmul.pack(q, into: packed)
            (weightScales, scaledWeightSums) = (scales, sums)
        case .bf16, .fp32:
            matmul = .shared(source: dnnl_bf16, weights: dnnl_bf16, destination: dnnl_f32, k: inputs, n: outputs, gelu: gelu)
            packed = .allocate(byteCount: matmul.packedBytes, alignment: 64)
            let rounded = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
            defer { rounded.deallocate() }
            Self.roundToBFloat16(weight, count: count, into: rounded)
            matmul.pack(rounded, into: packed)
            (weightScales, scaledWeightSums) = (nil, nil)
        }
    }

    /// W stored in `layout`: `.inOut` (GPT-2's Conv1D, [C, O]) is transposed to [O, C] once, here.
    public convenience init(weight: UnsafePointer<Float>, outputs: Int, inputs: Int, layout: WeightLayout, precision: Precision,
                            gelu: GELU.Form? = nil) {
        guard layout == .inOut else {
            self.init(weight: weight, outputs: outputs, inputs: inputs, precision: precision, gelu: gelu)
            return
        }
        let rows = Tensor(shape: [outputs, inputs])
        Transpose.forward(out: rows.data, inp: weight, rows: inputs, columns: outputs)
        self.init(weight: rows.data, outputs: outputs, inputs: inputs, precision: precision, gelu: gelu)
    }

    deinit {
        packed.deallocate()
        weightScales?.deallocate()
        scaledWeightSums?.deallocate()
    }

    /// out (rows, O) = inp (rows, C) · Wᵀ (+ bias), then GELU when the layer has one (a bias is
    /// then required). `scratch` holds the low-precision copy of the activations (grown to the
    /// largest call; one per model serves all its layers).
    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int,
                        bias: UnsafePointer<Float>?, scratch: GrowableBuffer) {
        guard rows > 0 else { return }
        precondition(gelu == nil || bias != nil, "a layer with GELU takes its bias")
        let (C, O) = (inputs, outputs)
        switch precision {
        case .int8:
            // Floats: row scales, row zero points, then the u8 rows.
            let floats = scratch.ensure(2 * rows + (rows * C + 3) / 4)
            let rowScales = floats, rowZeros = floats + rows
            let quantized = UnsafeMutableRawPointer(floats + 2 * rows).bindMemory(to: UInt8.self, capacity: rows * C)
            Parallel.forRange(rows, costPerItem: 2 * C) { range in
                for r in range {
                    (rowScales[r], rowZeros[r]) = Self.quantizeRow(inp + r * C, count: C, into: quantized + r * C)
                }
            }
            // The s32 accumulators land in `out` (4 bytes each, as the floats that replace them).
            matmul.run(source: quantized, packed: packed, destination: out, m: rows)
            let (scales, sums, gelu) = (weightScales!, scaledWeightSums!, gelu)
            Parallel.forRange(rows, costPerItem: gelu == nil ? 2 * O : 10 * O) { range in
                for r in range {
                    Self.dequantizeRow(out + r * O, count: O, rowScale: rowScales[r], rowZero: rowZeros[r],
                                       weightScales: scales, scaledSums: sums, bias: bias)
                    if let gelu { GELU.apply(out + r * O, count: O, form: gelu) }
                }
            }
        case .bf16, .fp32:
            let halves = UnsafeMutableRawPointer(scratch.ensure((rows * C + 1) / 2)).bindMemory(to: UInt16.self, capacity: rows * C)
            Parallel.forRange(rows, costPerItem: C) { range in
                Self.roundToBFloat16(inp + range.lowerBound * C, count: range.count * C, into: halves + range.lowerBound * C)
            }
            guard gelu == nil else {
                matmul.run(source: halves, packed: packed, destination: out, m: rows, bias: bias)
                return
            }
            matmul.run(source: halves, packed: packed, destination: out, m: rows)
            if let bias {
                Parallel.forRange(rows, costPerItem: O) { range in
                    for r in range {
                        let row = out + r * O
                        for o in 0..<O { row[o] += bias[o] }
                    }
                }
            }
        }
    }

    /// One output channel: q = round(w / s), s = max|w| / 127 (1 for an all-zero row); returns s and Σ q.
    static func quantizeChannel(_ w: UnsafePointer<Float>, count: Int, into q: UnsafeMutablePointer<Int8>) -> (Float, Int32) {
        var largest: Float = 0
        for k in 0..<count { largest = max(largest, abs(w[k])) }
        let scale = largest > 0 ? largest / 127 : 1
        var sum: Int32 = 0
        for k in 0..<count {
            let value = Int8(min(max((w[k] / scale).rounded(), -127), 127))
            q[k] = value
            sum += Int32(value)
        }
        return (scale, sum)
    }

    /// Adding 2²³ to a float in [0, 2²³) leaves round-to-nearest-even(x) in its low mantissa bits:
    /// a float-to-integer conversion made of one add and a bit cast, which LLVM vectorizes (Swift's
    /// SIMD integer-from-float initializers run lane by lane through a generic path, 20× slower).
    static let roundingShift: Float = 8_388_608

    /// One activation row to u8 with its own scale and zero point (see the type's comment).
    @inline(__always)
    static func quantizeRow(_ x: UnsafePointer<Float>, count: Int, into q: UnsafeMutablePointer<UInt8>) -> (scale: Float, zero: Float) {
        // The range in SIMD lanes: a scalar min/max reduction does not vectorize (NaN ordering),
        // nor does pointwiseMin (lane by lane); masked replacement compiles to compares and blends.
        let raw = UnsafeRawPointer(x)
        var low = SIMD16<Float>(repeating: 0), high = SIMD16<Float>(repeating: 0)
        var k = 0
        while k + 16 <= count {
            let v = raw.loadUnaligned(fromByteOffset: 4 * k, as: SIMD16<Float>.self)
            low.replace(with: v, where: v .< low)
            high.replace(with: v, where: v .> high)
            k += 16
        }
        var lo = low.min(), hi = high.max()
        for tail in k..<count {
            lo = min(lo, x[tail])
            hi = max(hi, x[tail])
        }
        let scale = hi > lo ? (hi - lo) / 255 : 1
        let zero = (-lo / scale).rounded()
        let inverse = 1 / scale
        for k in 0..<count {
            // Comparisons rather than min/max, whose NaN rules keep the loop scalar (14× slower).
            var level = x[k] * inverse + zero
            level = level < 0 ? 0 : level
            level = level > 255 ? 255 : level
            q[k] = UInt8(truncatingIfNeeded: (level + roundingShift).bitPattern)
        }
        return (scale, zero)
    }

    /// The s32 accumulators of one output row, read in place, to floats: s_a·(s_w·acc − z·s_w·Σq) + b.
    @inline(__always)
    static func dequantizeRow(_ row: UnsafeMutablePointer<Float>, count: Int, rowScale: Float, rowZero: Float,
                              weightScales: UnsafePointer<Float>, scaledSums: UnsafePointer<Float>, bias: UnsafePointer<Float>?) {
        let accumulators = UnsafeMutableRawPointer(row).assumingMemoryBound(to: Int32.self)
        if let bias {
            for k in 0..<count {
                row[k] = (Float(accumulators[k]) * weightScales[k] - rowZero * scaledSums[k]) * rowScale + bias[k]
            }
        } else {
            for k in 0..<count {
                row[k] = (Float(accumulators[k]) * weightScales[k] - rowZero * scaledSums[k]) * rowScale
            }
        }
    }

    /// fp32 to bf16 bits, rounding to nearest even (finite inputs: activations and weights are
    /// checked finite before they get here).
    static func roundToBFloat16(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt16>) {
        // Read as UInt32 directly: going through Float.bitPattern keeps the loop scalar (15× slower).
        let words = UnsafeRawPointer(x).assumingMemoryBound(to: UInt32.self)
        for k in 0..<count {
            let bits = words[k]
            out[k] = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
        }
    }

    /// bf16 bits back to fp32 (tests' references).
    public static func float(bfloat16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}
