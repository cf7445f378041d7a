import PRMCore

/// `--precision`: the number format of the encoder's inference matrix products, for every
/// command that scores or embeds (score, embed, serve, eval, bench score).
public enum PrecisionOption {
    public static let spec = OptionSpec.value(
        "precision", placeholder: "P",
        help: "Inference precision of the BERT encoder's matrix products: fp32, bf16 (needs AVX512_BF16) or int8 "
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
