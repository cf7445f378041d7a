import Foundation
import PRMCore
import PRMModel
import PRMPolicy
import PRMTestSupport

/// Small policies on the real policy vocabulary (data/policy/tokenizer.json), for fast tests.
enum TinyPolicies {
    static var tokenizer: URL { TestSupport.repoRoot.appendingPathComponent("data/policy/tokenizer.json") }

    static func settings(embedding: Int = 16, layers: Int = 1, heads: Int = 2, positions: Int = 64, userTokens: Int = 2) -> SFTSettings {
        var s = SFTSettings()
        s.embedding = embedding
        s.layers = layers
        s.heads = heads
        s.positions = positions
        s.userTokens = userTokens
        s.dropout = 0
        return s
    }

    /// A GPT-2-initialised policy with `users` known users ("user-1" …).
    static func policy(users: Int = 0, settings: SFTSettings = settings(), seed: UInt64 = 5) throws -> (Policy, UserTable) {
        var s = settings
        s.seed = seed
        let policy = try s.makePolicy(tokenizerFile: tokenizer)
        let table = UserTable(ids: (1...max(users, 1)).prefix(users).map { "user-\($0)" })
        return (users == 0 ? policy : try policy.withUsers(table, known: UserTable(indices: [:])), table)
    }

    /// Every value drawn afresh with a spread that carries signal through every path (LayerNorm
    /// gains near 1, everything else 0.3·N(0, 1)), user offsets and value head included.
    static func randomize(_ policy: Policy, seed: UInt64) {
        var rng = RandomSource(seed: seed)
        let p = policy.parameters
        for entry in p.entries {
            let gain = entry.name.contains("ln_") && entry.name.hasSuffix(".weight")
            for i in 0..<entry.count { p.values[entry.offset + i] = gain ? 1 + 0.1 * rng.nextNormal() : 0.3 * rng.nextNormal() }
        }
    }
}
