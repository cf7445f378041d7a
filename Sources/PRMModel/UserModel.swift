import Foundation
import PRMCore

/// How implicit user embeddings are parameterised (P-RLHF Sec. 4, Examples 1–3).
public enum UserModelKind: String, Codable, Sendable, CaseIterable {
    /// Every user shares one embedding; with T_u = 0 this is the vanilla reward model.
    case uniform
    /// e_0 generic; e_i = e_0 + o_i (or e_i = o_i without the shared part).
    case individual
    /// K centres; e_i = softmax(w_i) · centres (low rank: U·K + K·T_u·d parameters).
    case cluster
}

/// The implicit user model's shape, stored in the checkpoint's config.json.
public struct UserModelConfig: Codable, Sendable, Equatable {
    public var kind: UserModelKind
    /// T_u: vectors per user (soft-prompt tokens); 1 for the linear-head aggregator.
    public var tokens: Int
    /// Known users; indices 1...users, 0 is the generic / unknown user.
    public var users: Int
    /// K, for the cluster model.
    public var clusters: Int
    /// Individual model: e_i = e_0 + o_i when true, e_i = o_i when false.
    public var sharedGeneric: Bool

    enum CodingKeys: String, CodingKey {
        case kind, tokens = "user_tokens", users, clusters, sharedGeneric = "shared_generic"
    }

    public init(kind: UserModelKind, tokens: Int, users: Int, clusters: Int = 10, sharedGeneric: Bool = true) {
        self.kind = kind
        self.tokens = tokens
        self.users = users
        self.clusters = clusters
        self.sharedGeneric = sharedGeneric
    }
}

/// Maps a user index to its T_u implicit vectors of width C, with an explicit backward pass.
public final class UserModel {
    public let config: UserModelConfig
    public let width: Int
    /// individual: (U+1, T_u, C); uniform: (1, T_u, C); cluster: centres (K, T_u, C).
    let table: Parameters.Handle?
    /// cluster only: user weights (U+1, K) before the softmax.
    let weights: Parameters.Handle?
    /// The tensor with a row per user (the rows `row(_:)` gives): the cluster model's weights, the
    /// individual model's table; nil for the uniform model, whose one row is everyone's.
    var perUserTable: Parameters.Handle? {
        switch config.kind {
        case .cluster: return weights
        case .individual: return table
        case .uniform: return nil
        }
    }
    private var parameters: Parameters?
    /// Users added after training (`prm adapt`, a service's adapt op), indices U+1, U+2, …: one
    /// own row each (see `rowSize`) in a small buffer of their own, "user.added" (n, rowSize), so
    /// adding a user is a table append that never reallocates or copies the trained parameters.
    /// Checkpoints write these rows after the trained ones, so a saved model has them in its table.
    public private(set) var added: Parameters?

    public init(config: UserModelConfig, width: Int, layout: inout Parameters.Layout) {
        self.config = config
        self.width = width
        let (T, C, U) = (config.tokens, width, config.users)
        guard T > 0 else {
            table = nil
            weights = nil
            return
        }
        switch config.kind {
        case .uniform:
            table = layout.add("user.uniform", [1, T, C], group: .user)
            weights = nil
        case .individual:
            table = layout.add("user.embeddings", [U + 1, T, C], group: .user)
            weights = nil
        case .cluster:
            table = layout.add("user.centres", [config.clusters, T, C], group: .user)
            weights = layout.add("user.cluster_weights", [U + 1, config.clusters], group: .mixture)
        }
    }

    public func bind(_ parameters: Parameters) { self.parameters = parameters }

    private var params: Parameters {
        guard let parameters else { preconditionFailure("UserModel used before bind(_:)") }
        return parameters
    }

    /// Floats per user embedding (T_u · C).
    public var size: Int { config.tokens * width }

    /// Floats of one user's own parameters: the T_u · C vectors (individual) or the K mixture
    /// logits (cluster); 0 for the uniform model, whose users share everything.
    public var rowSize: Int {
        guard table != nil else { return 0 }
        switch config.kind {
        case .uniform: return 0
        case .individual: return size
        case .cluster: return config.clusters
        }
    }

    /// Users added with `appendUsers`.
    public var addedUsers: Int { added.map { $0.count / max(rowSize, 1) } ?? 0 }

    /// Known users, trained and added: valid indices are 0...users.
    public var users: Int { config.users + addedUsers }

    /// Appends users whose own rows are `rows` (a multiple of `rowSize` floats, in the layout of
    /// `row(_:)`) and returns their indices. Only the small added-users buffer is reallocated.
    @discardableResult
    public func appendUsers(_ rows: [Float]) -> ClosedRange<Int>? {
        let n = rowSize
        guard n > 0, !rows.isEmpty, rows.count % n == 0 else { return nil }
        let old = addedUsers
        var layout = Parameters.Layout()
        _ = layout.add("user.added", [old + rows.count / n, n], group: .user)
        let grown = Parameters(layout)
        if let added { grown.values.data.update(from: added.values.data, count: added.count) }
        rows.withUnsafeBufferPointer { (grown.values.data + old * n).update(from: $0.baseAddress!, count: rows.count) }
        added = grown
        return (config.users + old + 1)...(config.users + old + rows.count / n)
    }

    /// A user's own row, value and gradient: (T_u, C) offsets or vectors for the individual model,
    /// (K) logits for the cluster model. nil for the uniform model.
    public func row(_ user: Int) -> (value: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>)? {
        let n = rowSize
        guard n > 0 else { return nil }
        precondition((0...users).contains(user), "user index \(user) outside 0...\(users)")
        if user > config.users, let added {
            let offset = (user - config.users - 1) * n
            return (added.values.data + offset, added.grads.data + offset)
        }
        let p = params
        guard let handle = config.kind == .cluster ? weights : table else { return nil }
        return (p.value(handle) + user * n, p.grad(handle) + user * n)
    }

    /// Initialises from randomly drawn rows of the token-embedding table, as the paper's reference
    /// code does, so user vectors start on the scale of real token embeddings. Individual offsets
    /// start at `spread` times such a row: at zero every user begins as the generic user and learns
    /// a deviation. Why not always zero: the shared representation's gradient from user i is
    /// weighted by e_i, and with every e_i = e_0 the gradients of users who want opposite things
    /// cancel, so a property only a minority (or half) of the users care about never enters h.
    public func initialize(fromTokenTable tokenTable: UnsafePointer<Float>, vocabulary: Int, spread: Float = 0, rng: inout RandomSource) {
        guard let table else { return }
        let p = params
        let rows = p.entry(table).count / width
        let base = p.value(table)
        for r in 0..<rows {
            let dst = base + r * width
            if config.kind == .individual && config.sharedGeneric && r >= config.tokens {
                dst.update(repeating: 0, count: width)
                guard spread != 0 else { continue }
                let source = tokenTable + Int(rng.next() % UInt64(vocabulary)) * width
                for i in 0..<width { dst[i] = spread * source[i] }
            } else {
                dst.update(from: tokenTable + Int(rng.next() % UInt64(vocabulary)) * width, count: width)
            }
        }
        if let weights {
            // Unit-variance logits start each user leaning towards some centres. With near-equal
            // mixtures every user sees the same average centre, the centres receive the same
            // (majority) gradient, and the weights' gradient ⟨C_k − C̄, de⟩ stays ~0: measured on
            // lengthpref, 0.1-scale logits left K=2 users indistinguishable after 3 epochs.
            let w = p.value(weights)
            for i in 0..<p.entry(weights).count { w[i] = rng.nextNormal() }
        }
    }

    /// out (T_u, C) = e_user.
    public func forward(out: UnsafeMutablePointer<Float>, user: Int) {
        guard let table else { return }
        let p = params
        let n = size
        switch config.kind {
        case .uniform:
            out.update(from: p.value(table), count: n)
        case .individual:
            guard let own = row(user)?.value else { return }
            out.update(from: own, count: n)
            if config.sharedGeneric && user != 0 {
                let generic = p.value(table)
                for i in 0..<n { out[i] += generic[i] }
            }
        case .cluster:
            let mixture = clusterMixture(user)
            out.update(repeating: 0, count: n)
            let centres = p.value(table)
            for (k, s) in mixture.enumerated() {
                for i in 0..<n { out[i] += s * centres[k * n + i] }
            }
        }
    }

    /// Accumulates parameter gradients from dout (T_u, C) = dL/de_user.
    public func backward(dout: UnsafePointer<Float>, user: Int) {
        guard let table else { return }
        let p = params
        let n = size
        switch config.kind {
        case .uniform:
            let d = p.grad(table)
            for i in 0..<n { d[i] += dout[i] }
        case .individual:
            guard let own = row(user)?.grad else { return }
            for i in 0..<n { own[i] += dout[i] }
            if config.sharedGeneric && user != 0 {
                let generic = p.grad(table)
                for i in 0..<n { generic[i] += dout[i] }
            }
        case .cluster:
            guard let dw = row(user)?.grad else { return }
            let mixture = clusterMixture(user)
            let centres = p.value(table), dCentres = p.grad(table)
            // ds_k = ⟨C_k, dout⟩; dC_k += s_k · dout; then the softmax backward into w_user.
            var ds = [Float](repeating: 0, count: mixture.count)
            for (k, s) in mixture.enumerated() {
                var dot: Float = 0
                for i in 0..<n {
                    dot += centres[k * n + i] * dout[i]
                    dCentres[k * n + i] += s * dout[i]
                }
                ds[k] = dot
            }
            let inner = zip(mixture, ds).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            for k in 0..<mixture.count { dw[k] += mixture[k] * (ds[k] - inner) }
        }
    }

    /// Centre k's T_u vectors (T_u, C), for the cluster model; nil otherwise.
    public func clusterCentre(_ k: Int) -> UnsafePointer<Float>? {
        guard config.kind == .cluster, let table, (0..<config.clusters).contains(k) else { return nil }
        return UnsafePointer(params.value(table) + k * size)
    }

    /// softmax(w_user) over the K clusters.
    public func clusterMixture(_ user: Int) -> [Float] {
        guard weights != nil, let w = row(user)?.value else { return [] }
        let m = (0..<config.clusters).map { w[$0] }.max() ?? 0
        let e = (0..<config.clusters).map { Foundation.exp(w[$0] - m) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }
}
