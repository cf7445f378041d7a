import Foundation

/// The logistic function and its integral, written once for every loss and layer that needs them.
public enum Logistic {
    /// log(1 + eᶻ) without overflow for large z or loss of precision for very negative z.
    @inline(__always)
    public static func softplus(_ z: Float) -> Float { max(z, 0) + Foundation.log1p(Foundation.exp(-abs(z))) }

    /// 1 / (1 + e⁻ᶻ), never forming e of a large positive number.
    @inline(__always)
    public static func sigmoid(_ z: Float) -> Float {
        z >= 0 ? 1 / (1 + Foundation.exp(-z)) : Foundation.exp(z) / (1 + Foundation.exp(z))
    }
}
