import PRMCore

/// A model's inference matrices prepared for `--precision` bf16 or int8 (`LowPrecisionLinear`),
/// per layer in the model's own order, made once when the precision is selected (at load), never
/// per call. BERT, GPT-2 and the Llama decoder each keep one; at fp32 it holds nothing and they
/// run `BLAS.gemm`.
///
/// Selecting bf16 or int8 makes the model inference-only: each fp32 matrix's memory is given back
/// as soon as its low-precision copy is made (`Parameters.releaseValues`), so a model at bf16 or
/// int8 never holds both copies of more than one matrix, and its resident size ends below fp32's.
/// Training refuses those precisions, so nothing changes the matrices afterwards; selecting
/// another precision later is refused (load the model again).
final class LowPrecisionWeights {
    private(set) var precision = Precision.fp32
    /// At int8, the products run at int8 (`Int8Plan.products` when the precision was selected);
    /// the others run at bf16.
    private(set) var int8Products = Set(MatrixProduct.allCases)
    private var layers: [[LowPrecisionLinear]]?
    /// The activations' low-precision copy, shared by every matrix (a model runs one product at a time).
    let scratch = GrowableBuffer()

    /// Selects `precision`, refusing one the CPU does not run natively (no silent emulation), and
    /// any change once the fp32 matrices were released.
    func select(_ precision: Precision) throws {
        let products = Int8Plan.products
        if layers != nil, precision != self.precision || products != int8Products {
            throw ModelError("this model's fp32 matrices were released when its \(Int8Plan.describe(self.precision, products: int8Products)) "
                             + "copies were prepared; load it again to infer at \(Int8Plan.describe(precision, products: products))")
        }
        for used in Set(MatrixProduct.allCases.map { Int8Plan.precision(of: $0, at: precision, products: products) }) {
            try used.requireNative()
        }
        self.precision = precision
        int8Products = products
    }

    /// The prepared matrices, nil at fp32; made by `make` on the first call, which builds every
    /// layer's with `linear`.
    func prepared(make: () -> [[LowPrecisionLinear]]) -> [[LowPrecisionLinear]]? {
        guard precision != .fp32 else { return nil }
        if layers == nil { layers = make() }
        return layers
    }

    /// One matrix for `make`, prepared in its product's format; its fp32 values are released
    /// (the type's comment) before the next is prepared.
    func linear(_ product: MatrixProduct, of parameters: Parameters, weight: UnsafeMutablePointer<Float>, outputs: Int, inputs: Int,
                layout: WeightLayout = .outIn, gelu: GELU.Form? = nil) -> LowPrecisionLinear {
        let made = LowPrecisionLinear(weight: weight, outputs: outputs, inputs: inputs, layout: layout,
                                      precision: Int8Plan.precision(of: product, at: precision, products: int8Products), gelu: gelu)
        parameters.releaseValues(weight, count: outputs * inputs)
        return made
    }
}
