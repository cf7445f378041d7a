import CDNNL

/// The number format of an encoder's inference matrix products (`--precision`), chosen per model
/// at load. LayerNorm, softmax, attention scores, GELU and the reward head stay fp32 in all three.
public enum Precision: String, CaseIterable, Sendable, CustomStringConvertible {
    /// fp32 sgemm (`BLAS.gemm`), the default.
    case fp32
    /// bf16 weights and activations, fp32 accumulation: oneDNN's AVX512_BF16 matmul.
    case bf16
    /// s8 weights per output channel, u8 activations per row, s32 accumulation: oneDNN's
    /// AVX-512 VNNI matmul.
    case int8

    public var description: String { rawValue }

    /// The names accepted by `--precision`.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The oneDNN ISA level that runs the precision natively. int8 asks for AVX-512 VNNI, not
    /// AVX2: without VNNI oneDNN multiplies u8 by s8 with vpmaddubsw, whose 16-bit pair sums
    /// saturate (255·127·2 > 32767), so the results would be wrong as well as slow.
    var nativeISA: dnnl_cpu_isa_t? {
        switch self {
        case .fp32: return nil
        case .bf16: return dnnl_cpu_isa_avx512_core_bf16
        case .int8: return dnnl_cpu_isa_avx512_core_vnni
        }
    }

    var instructionSet: String {
        switch self {
        case .fp32: return "any"
        case .bf16: return "AVX512_BF16"
        case .int8: return "AVX-512 VNNI"
        }
    }

    /// Whether oneDNN runs this precision natively here: the CPU's ISA as oneDNN sees it, which
    /// `ONEDNN_MAX_CPU_ISA` lowers (the ISA values are bit sets: a level contains those below).
    public var isNative: Bool {
        guard let needed = nativeISA else { return true }
        let effective = dnnl_get_effective_cpu_isa().rawValue
        return effective & needed.rawValue == needed.rawValue
    }

    /// The precisions this CPU runs natively, fp32 first.
    public static var native: [Precision] { allCases.filter(\.isNative) }

    /// Throws unless the CPU runs the precision natively: oneDNN would otherwise emulate it,
    /// slower than fp32 (bf16), or not at all (int8), so there is no silent fallback.
    public func requireNative() throws {
        guard !isNative else { return }
        let isa = String(cString: dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()))
        throw Unsupported(message: "--precision \(self) needs \(instructionSet), which this CPU lacks as oneDNN sees it "
                          + "(\(isa)); use --precision \(Precision.native.last ?? .fp32) (supported here: "
                          + Precision.native.map(\.rawValue).joined(separator: ", ") + ")")
    }

    /// A precision the CPU cannot run natively.
    public struct Unsupported: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }
}
