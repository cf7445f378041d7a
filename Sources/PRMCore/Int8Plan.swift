/// Which matrix products `--precision int8` runs at int8; the others run at bf16. Process-wide,
/// like `Compute.threads`: set once from the command line (`--int8-products`) before any model
/// selects its precision, read by each model when it does (`LowPrecisionWeights.select`).
public enum Int8Plan {
    /// The plan `--precision int8` runs unless `--int8-products` says otherwise.
    public static let defaultProducts = Set(MatrixProduct.allCases)

    nonisolated(unsafe) private static var storedProducts = defaultProducts

    /// The products run at int8 under `--precision int8`.
    public static var products: Set<MatrixProduct> {
        get { storedProducts }
        set { storedProducts = newValue }
    }

    /// The format of `product` when a model runs at `precision`: bf16 for an int8 model's products
    /// outside the plan, `precision` otherwise.
    public static func precision(of product: MatrixProduct, at precision: Precision, products: Set<MatrixProduct>) -> Precision {
        precision == .int8 && !products.contains(product) ? .bf16 : precision
    }

    /// The products as `--int8-products` lists them, in layer order.
    public static func names(_ products: Set<MatrixProduct>) -> String {
        MatrixProduct.allCases.filter(products.contains).map(\.rawValue).joined(separator: ",")
    }

    /// The plan as `info` and `prm bench` report it: "int8", or "int8 (ffn-down at bf16)".
    public static func describe(_ precision: Precision, products: Set<MatrixProduct>) -> String {
        let others = MatrixProduct.allCases.filter { !products.contains($0) }
        guard precision == .int8, !others.isEmpty else { return precision.rawValue }
        return "int8 (\(others.map(\.rawValue).joined(separator: ", ")) at bf16)"
    }
}
