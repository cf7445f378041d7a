import CDNNL
import Foundation

/// oneDNN's matmul primitive for the low-precision inference paths: dst (M, N) = src (M, K) ·
/// weights (K, N), src and dst row-major with M given per call (`DNNL_RUNTIME_DIM_VAL`), weights
/// in the layout the primitive prefers, reordered into it once at load (`pack`).
///
/// With `gelu`, dst = gelu(src · weights + bias), the fp32 bias and GELU applied by the
/// primitive itself (an eltwise post-op) as it writes dst, rather than in a pass over dst after it.
///
/// One primitive per (types, K, N, GELU), made on first use and kept for the process: making one
/// JIT-compiles its kernels (milliseconds), running one costs microseconds, and every layer of a
/// model shares its shape's primitive. Running is safe from several threads (no user scratchpad).
final class DNNLMatmul: @unchecked Sendable {
    struct Key: Hashable {
        let source: UInt32, weights: UInt32, destination: UInt32
        let k: Int, n: Int
        /// The post-op GELU's form, after a bias; nil for neither.
        let gelu: GELU.Form?
    }

    let key: Key
    private let primitive: dnnl_primitive_t
    /// The weights' layout the primitive chose (`dnnl_format_tag_any` at creation).
    private var weightsDescription: dnnl_memory_desc_t

    nonisolated(unsafe) private static var cache: [Key: DNNLMatmul] = [:]
    private static let cacheLock = NSLock()

    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var engine: dnnl_engine_t?
        check(dnnl_engine_create(&engine, dnnl_cpu, 0), "creating the CPU engine")
        return engine!
    }()

    /// The primitive for these types and sizes, made on first use.
    static func shared(source: dnnl_data_type_t, weights: dnnl_data_type_t, destination: dnnl_data_type_t, k: Int, n: Int,
                       gelu: GELU.Form? = nil) -> DNNLMatmul {
        let key = Key(source: source.rawValue, weights: weights.rawValue, destination: destination.rawValue, k: k, n: n, gelu: gelu)
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let made = cache[key] { return made }
        let made = DNNLMatmul(key: key, source: source, weights: weights, destination: destination)
        cache[key] = made
        return made
    }

    private init(key: Key, source: dnnl_data_type_t, weights: dnnl_data_type_t, destination: dnnl_data_type_t) {
        self.key = key
        let runtimeRows = Int64.min  // DNNL_RUNTIME_DIM_VAL
        var src = Self.plain(rows: runtimeRows, columns: key.k, type: source)
        var dst = Self.plain(rows: runtimeRows, columns: key.n, type: destination)
        var wei = dnnl_memory_desc_t()
        Self.check(dnnl_memory_desc_init_by_tag(&wei, 2, [Int64(key.k), Int64(key.n)], weights, dnnl_format_tag_any), "weights desc")
        var description = dnnl_matmul_desc_t()
        var bias = Self.plain(rows: 1, columns: key.n, type: dnnl_f32)
        if key.gelu == nil {
            Self.check(dnnl_matmul_desc_init(&description, &src, &wei, nil, &dst), "matmul desc \(key)")
        } else {
            Self.check(dnnl_matmul_desc_init(&description, &src, &wei, &bias, &dst), "matmul desc \(key)")
        }
        let attributes = Self.postOps(gelu: key.gelu)
        defer { if let attributes { dnnl_primitive_attr_destroy(attributes) } }
        var pd: dnnl_primitive_desc_t?
        Self.check(dnnl_primitive_desc_create(&pd, &description, attributes, Self.engine, nil), "matmul primitive desc \(key)")
        defer { dnnl_primitive_desc_destroy(pd) }
        weightsDescription = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0).pointee
        var made: dnnl_primitive_t?
        Self.check(dnnl_primitive_create(&made, pd), "matmul primitive \(key)")
        primitive = made!
    }

    /// The attributes of a primitive that applies GELU as it writes dst (nil: none).
    private static func postOps(gelu: GELU.Form?) -> dnnl_primitive_attr_t? {
        guard let gelu else { return nil }
        var attributes: dnnl_primitive_attr_t?, postOps: dnnl_post_ops_t?
        check(dnnl_primitive_attr_create(&attributes), "attributes")
        check(dnnl_post_ops_create(&postOps), "post-ops")
        defer { dnnl_post_ops_destroy(postOps) }
        let kind = gelu == .erf ? dnnl_eltwise_gelu_erf : dnnl_eltwise_gelu_tanh
        check(dnnl_post_ops_append_eltwise(postOps, 1, kind, 0, 0), "GELU post-op")
        check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "setting post-ops")
        return attributes
    }

    /// Bytes of one weight matrix in the primitive's layout.
    var packedBytes: Int { withUnsafePointer(to: &weightsDescription) { dnnl_memory_desc_get_size($0) } }

    /// Reorders a (K, N) weight matrix stored N-major (a PyTorch [out, in] `nn.Linear` weight, tag
    /// `ba`) of the primitive's weight type into `packed` (`packedBytes`).
    func pack(_ weights: UnsafeRawPointer, into packed: UnsafeMutableRawPointer) {
        var plain = dnnl_memory_desc_t()
        Self.check(dnnl_memory_desc_init_by_tag(&plain, 2, [Int64(key.k), Int64(key.n)], dnnl_data_type_t(key.weights), dnnl_ba), "plain weights")
        var reorder: dnnl_primitive_desc_t?
        Self.check(dnnl_reorder_primitive_desc_create(&reorder, &plain, Self.engine, &weightsDescription, Self.engine, nil), "weights reorder")
        defer { dnnl_primitive_desc_destroy(reorder) }
        var primitive: dnnl_primitive_t?
        Self.check(dnnl_primitive_create(&primitive, reorder), "weights reorder primitive")
        defer { dnnl_primitive_destroy(primitive) }
        let from = Self.memory(&plain, UnsafeMutableRawPointer(mutating: weights)), to = Self.memory(&weightsDescription, packed)
        defer { dnnl_memory_destroy(from); dnnl_memory_destroy(to) }
        Self.execute(primitive!, [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)])
    }

    /// dst (m, N) = src (m, K) · packed weights; with the primitive's GELU, gelu(… + bias (N)).
    func run(source: UnsafeRawPointer, packed: UnsafeRawPointer, destination: UnsafeMutableRawPointer, m: Int,
             bias: UnsafePointer<Float>? = nil) {
        guard m > 0 else { return }
        precondition((bias == nil) == (key.gelu == nil), "a bias goes with the GELU post-op, and only with it")
        var src = Self.plain(rows: Int64(m), columns: key.k, type: dnnl_data_type_t(key.source))
        var dst = Self.plain(rows: Int64(m), columns: key.n, type: dnnl_data_type_t(key.destination))
        let a = Self.memory(&src, UnsafeMutableRawPointer(mutating: source))
        let w = Self.memory(&weightsDescription, UnsafeMutableRawPointer(mutating: packed))
        let c = Self.memory(&dst, destination)
        var arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: a), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: w),
                         dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: c)]
        var biasDescription = Self.plain(rows: 1, columns: key.n, type: dnnl_f32)
        if let bias { arguments.append(dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: Self.memory(&biasDescription, UnsafeMutablePointer(mutating: bias)))) }
        defer { for argument in arguments { dnnl_memory_destroy(argument.memory) } }
        Self.execute(primitive, arguments)
    }

    /// Runs on the calling thread's OpenMP pool with `Compute.threads` (one inside prm's own
    /// parallel regions), as `BLAS.gemm` does. A stream per call: oneDNN's CPU streams are cheap
    /// and a shared one would tie concurrent callers together.
    private static func execute(_ primitive: dnnl_primitive_t, _ arguments: [dnnl_exec_arg_t]) {
        let threads = Parallel.isInsideRegion ? 1 : Compute.threads
        if omp_get_max_threads() != threads { omp_set_num_threads(Int32(threads)) }
        var stream: dnnl_stream_t?
        check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream")
        defer { dnnl_stream_destroy(stream) }
        check(dnnl_primitive_execute(primitive, stream, Int32(arguments.count), arguments), "matmul execute")
        check(dnnl_stream_wait(stream), "stream wait")
    }

    private static func plain(rows: Int64, columns: Int, type: dnnl_data_type_t) -> dnnl_memory_desc_t {
        var description = dnnl_memory_desc_t()
        check(dnnl_memory_desc_init_by_tag(&description, 2, [rows, Int64(columns)], type, dnnl_ab), "plain desc")
        return description
    }

    private static func memory(_ description: inout dnnl_memory_desc_t, _ handle: UnsafeMutableRawPointer) -> dnnl_memory_t {
        var memory: dnnl_memory_t?
        check(dnnl_memory_create(&memory, &description, engine, handle), "memory")
        return memory!
    }

    /// oneDNN fails here only on arguments prm rules out (sizes, types it checked at load).
    private static func check(_ status: dnnl_status_t, _ what: String) {
        precondition(status == dnnl_success, "oneDNN failed (status \(status.rawValue)) at \(what)")
    }
}
