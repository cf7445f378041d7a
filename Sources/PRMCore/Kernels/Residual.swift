/// out = a + b (the residual connection); its backward passes the gradient to both branches.
public enum Residual {
    public static func forward(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, count: Int) {
        Parallel.forRange(count) { range in
            for i in range { out[i] = a[i] + b[i] }
        }
    }

    public static func backward(da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, count: Int) {
        Parallel.forRange(count) { range in
            for i in range {
                da[i] += dout[i]
                db[i] += dout[i]
            }
        }
    }
}
