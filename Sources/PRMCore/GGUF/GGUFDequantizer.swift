import Foundation

/// ggml's block formats to Float32, in the arithmetic of gguf-py's `gguf.quants.dequantize`
/// (Float32 products and sums in the same order, half scales widened exactly), so the values
/// are equal bit for bit. Block layouts: ggml-common.h (`block_q4_0`, … `block_q6_K`).
enum GGUFDequantizer {
    /// Dequantizes `count` values (a whole number of blocks) from `source` into `destination`.
    static func dequantize(_ type: GGUFTensorType, source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        let blocks = count / type.blockSize
        let (size, bytes) = (type.blockSize, type.blockBytes)
        Parallel.forRange(blocks, costPerItem: size) { range in
            for b in range {
                let block = source + b * bytes, out = destination + b * size
                switch type {
                case .f32: out.pointee = block.loadUnaligned(as: Float.self)
                case .f16: out.pointee = floatFromHalf(block.loadUnaligned(as: UInt16.self))
                case .bf16: out.pointee = Float(bitPattern: UInt32(block.loadUnaligned(as: UInt16.self)) << 16)
                case .q4_0: q4_0(block, out)
                case .q4_1: q4_1(block, out)
                case .q8_0: q8_0(block, out)
                case .q4_K: q4_K(block, out)
                case .q6_K: q6_K(block, out)
                }
            }
        }
    }

    @inline(__always)
    private static func half(_ block: UnsafeRawPointer, _ offset: Int) -> Float {
        floatFromHalf(block.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// d (f16), 16 bytes of nibbles: value j is (low nibble − 8)·d, value j + 16 (high nibble − 8)·d.
    private static func q4_0(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(block, 0)
        let qs = block.advanced(by: 2).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            out[j] = d * Float(Int(qs[j] & 0x0F) - 8)
            out[j + 16] = d * Float(Int(qs[j] >> 4) - 8)
        }
    }

    /// d, m (f16), 16 bytes of nibbles: value = d·q + m.
    private static func q4_1(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let (d, m) = (half(block, 0), half(block, 2))
        let qs = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            out[j] = d * Float(qs[j] & 0x0F) + m
            out[j + 16] = d * Float(qs[j] >> 4) + m
        }
    }

    /// d (f16), 32 signed bytes: value = q·d.
    private static func q8_0(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let d = half(block, 0)
        let qs = block.advanced(by: 2).assumingMemoryBound(to: Int8.self)
        for j in 0..<32 { out[j] = Float(qs[j]) * d }
    }

    /// d, dmin (f16), 12 bytes of eight 6-bit scales and mins, 128 bytes of nibbles: sub-block j
    /// (32 values) is (d·scale_j)·q − dmin·min_j; sub-blocks 2i and 2i + 1 share bytes 32i…32i + 31,
    /// low and high nibbles.
    private static func q4_K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let (d, dmin) = (half(block, 0), half(block, 2))
        let scales = block.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        let qs = block.advanced(by: 16).assumingMemoryBound(to: UInt8.self)
        for j in 0..<8 {
            let (scale, minimum): (UInt8, UInt8)
            if j < 4 {
                (scale, minimum) = (scales[j] & 0x3F, scales[j + 4] & 0x3F)
            } else {
                scale = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 2) & 0x30)
                minimum = (scales[j + 4] >> 4) | ((scales[j] >> 2) & 0x30)
            }
            let factor = d * Float(scale), offset = dmin * Float(minimum)
            let (bytes, shift) = (qs + 32 * (j / 2), UInt8(4 * (j % 2)))
            for l in 0..<32 { out[32 * j + l] = factor * Float((bytes[l] >> shift) & 0x0F) - offset }
        }
    }

    /// 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 signed scales, d (f16): value o is
    /// (d·scale_{o/16})·(q − 32) with q = low | high << 4.
    private static func q6_K(_ block: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
        let ql = block.assumingMemoryBound(to: UInt8.self)
        let qh = ql + 128
        let scales = block.advanced(by: 192).assumingMemoryBound(to: Int8.self)
        let d = half(block, 208)
        for o in 0..<256 {
            let (h, within) = (o / 128, o % 128)
            let low = (ql[h * 64 + within % 64] >> UInt8(4 * (within / 64))) & 0x0F
            let high = (qh[h * 32 + within % 32] >> UInt8(2 * (within / 32))) & 0x03
            let q = Int(low | high << 4) - 32
            out[o] = (d * Float(scales[o / 16])) * Float(q)
        }
    }
}
