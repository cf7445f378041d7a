/// Matrix transposition, in tiles so that reads and writes both stay within a few cache lines.
public enum Transpose {
    static let tile = 32

    /// out (C, R) = inpᵀ for inp (R, C).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows R: Int, columns C: Int) {
        let rowTiles = (R + tile - 1) / tile
        Parallel.forRange(rowTiles, costPerItem: tile * C) { tiles in
            for rowTile in tiles {
                let r0 = rowTile * tile, r1 = min(R, r0 + tile)
                var c0 = 0
                while c0 < C {
                    let c1 = min(C, c0 + tile)
                    for r in r0..<r1 {
                        for c in c0..<c1 { out[c * R + r] = inp[r * C + c] }
                    }
                    c0 = c1
                }
            }
        }
    }
}
