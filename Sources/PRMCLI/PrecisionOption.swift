import Foundation
import PRMCore

/// `--precision`: the number format of the backbone's inference matrix products, for every
/// command that scores, embeds or generates (score, embed, serve, eval, generate, bench score, generate and reward),
/// and `--int8-products`, which of a layer's products `--precision int8` runs at int8.
public enum PrecisionOption {
    public static let spec = OptionSpec.value(
        "precision", placeholder: "P",
        help: "Inference precision of the backbone's matrix products (BERT, GPT-2, the Llama family: reward models and GGUF chat models): fp32, bf16 (needs AVX512_BF16) or int8 "
            + "(needs AVX-512 VNNI; weights per channel, activations per row). A precision this CPU cannot run natively is refused.",
        default: Precision.fp32.rawValue)

    public static let int8Products = OptionSpec.value(
        "int8-products", placeholder: "LIST",
        help: "With --precision int8, the layer products run at int8, comma-separated from \(MatrixProduct.names); "
            + "the others run at bf16 (which then needs AVX512_BF16 too)",
        default: Int8Plan.names(Int8Plan.defaultProducts))
}

extension ParsedArguments {
    /// The `--precision` given, fp32 when none; sets the process's int8 plan (`Int8Plan`) from
    /// `--int8-products` for the models loaded after.
    public func precision() throws -> Precision {
        let value = string("precision", default: Precision.fp32.rawValue)
        guard let precision = Precision(rawValue: value) else {
            throw usageError("--precision must be one of \(Precision.names), got '\(value)'")
        }
        Int8Plan.products = try int8Products(at: precision)
        return precision
    }

    /// `--int8-products` as a set, refused with a precision other than int8.
    private func int8Products(at precision: Precision) throws -> Set<MatrixProduct> {
        guard isSet("int8-products") else { return Int8Plan.defaultProducts }
        let list = string("int8-products", default: "")
        guard precision == .int8 else { throw usageError("--int8-products applies to --precision int8 only, got --precision \(precision)") }
        var products = Set<MatrixProduct>()
        for name in list.split(separator: ",", omittingEmptySubsequences: false).map({ String($0).trimmingCharacters(in: .whitespaces) }) {
            guard let product = MatrixProduct(rawValue: name) else {
                throw usageError("--int8-products takes \(MatrixProduct.names) (comma-separated), got '\(name)'")
            }
            products.insert(product)
        }
        return products
    }
}
