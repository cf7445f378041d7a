import PRMCore

/// `--precision`: the number format of the backbone's inference matrix products, for every
/// command that scores, embeds or generates (score, embed, serve, eval, generate, bench score and generate).
public enum PrecisionOption {
    public static let spec = OptionSpec.value(
        "precision", placeholder: "P",
        help: "Inference precision of the backbone's matrix products (BERT, GPT-2, Llama-family GGUF): fp32, bf16 (needs AVX512_BF16) or int8 "
            + "(needs AVX-512 VNNI; weights per channel, activations per row). A precision this CPU cannot run natively is refused.",
        default: Precision.fp32.rawValue)
}

extension ParsedArguments {
    /// The `--precision` given, fp32 when none.
    public func precision() throws -> Precision {
        let value = string("precision", default: Precision.fp32.rawValue)
        guard let precision = Precision(rawValue: value) else {
            throw usageError("--precision must be one of \(Precision.names), got '\(value)'")
        }
        return precision
    }
}
