import PRMCore

/// A model's inference matrices prepared for `--precision` bf16 or int8 (`LowPrecisionLinear`),
/// per layer in the model's own order: made when the precision is selected (at load) and again
/// whenever the parameters' version changed since (an optimizer step), never per call. BERT,
/// GPT-2 and the Llama decoder each keep one; at fp32 it holds nothing and they run `BLAS.gemm`.
final class LowPrecisionWeights {
    private(set) var precision = Precision.fp32
    private var layers: [[LowPrecisionLinear]] = []
    private var version: Int?
    /// The activations' low-precision copy, shared by every matrix (a model runs one product at a time).
    let scratch = GrowableBuffer()

    /// Selects `precision`, refusing one the CPU does not run natively (no silent emulation).
    func select(_ precision: Precision) throws {
        try precision.requireNative()
        self.precision = precision
        layers = []
        version = nil
    }

    /// The prepared matrices, nil at fp32; `make` builds every layer's at the selected precision
    /// when the parameters changed since the last call.
    func prepared(for parameters: Parameters, make: (Precision) -> [[LowPrecisionLinear]]) -> [[LowPrecisionLinear]]? {
        guard precision != .fp32 else { return nil }
        if version != parameters.version {
            layers = make(precision)
            version = parameters.version
        }
        return layers
    }
}
