/// The four kinds of matrix product in a transformer layer, named alike for BERT, GPT-2 and the
/// Llama decoder: what an int8 plan (`Int8Plan`) chooses a format for.
public enum MatrixProduct: String, CaseIterable, Sendable {
    /// The queries, keys and values from the layer's (normed) input.
    case qkv
    /// The attention's output projection.
    case attentionOutput = "attention-output"
    /// The FFN's first product(s): BERT's and GPT-2's before GELU, Llama's gate and up.
    case ffnUp = "ffn-up"
    /// The FFN's last product, from the activated inner rows (post-GELU or SwiGLU).
    case ffnDown = "ffn-down"

    /// The names `--int8-products` accepts.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
