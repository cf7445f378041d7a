import Foundation

/// RoPE in Hugging Face's rotate-half convention: in each head of D, element i < D/2 pairs with
/// i + D/2 and both turn by position · base^(−2i/D). The rotation is orthogonal, so its backward
/// pass is the same rotation by the opposite angle.
public struct RotaryTable: Sendable {
    let cos: [Float], sin: [Float]
    let half: Int

    /// The angles of one row per position.
    public init(positions: [Int32], headSize D: Int, base: Double) {
        half = D / 2
        var cos = [Float](repeating: 0, count: positions.count * half), sin = cos
        for (n, position) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(position) * pow(base, -Double(2 * i) / Double(D))
                cos[n * half + i] = Float(Foundation.cos(angle))
                sin[n * half + i] = Float(Foundation.sin(angle))
            }
        }
        (self.cos, self.sin) = (cos, sin)
    }

    /// Rotates the first `heads` heads of each row (the queries, then the keys), in place.
    public func apply(_ rows: UnsafeMutablePointer<Float>, rows N: Int, rowStride: Int, heads: Int) {
        rotate(rows, rows: N, rowStride: rowStride, heads: heads, direction: 1)
    }

    /// The backward pass of `apply`: gradients of the rotated values become gradients of the
    /// values before the rotation, in place.
    public func backward(_ gradients: UnsafeMutablePointer<Float>, rows N: Int, rowStride: Int, heads: Int) {
        rotate(gradients, rows: N, rowStride: rowStride, heads: heads, direction: -1)
    }

    private func rotate(_ rows: UnsafeMutablePointer<Float>, rows N: Int, rowStride: Int, heads: Int, direction: Float) {
        for n in 0..<N {
            for h in 0..<heads {
                let x = rows + n * rowStride + h * 2 * half
                for i in 0..<half {
                    let (a, b) = (x[i], x[i + half])
                    let (c, s) = (cos[n * half + i], direction * sin[n * half + i])
                    x[i] = a * c - b * s
                    x[i + half] = b * c + a * s
                }
            }
        }
    }
}
