import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMTestSupport
@testable import PRMScoring

/// The scoring path against the training path's forward (an independent route through the same
/// weights), for every aggregator and user model, on BERT and GPT-2 backbones.
final class ScorerTests: XCTestCase {
    static let users = UserTable(ids: ["ann", "bob", "cy"])

    /// A randomly initialised reward model whose users all differ from the generic one.
    static func model(_ aggregator: Aggregator, _ kind: UserModelKind, folder: URL, maxLength: Int = 48, replyCounts: Int = 0,
                      pooling: PoolingSpan = .window) throws -> RewardModel {
        let tokens = aggregator == .linearHead ? 1 : 3
        let config = RewardModelConfig(aggregator: aggregator,
                                       userModel: UserModelConfig(kind: kind, tokens: tokens, users: users.count, clusters: 2, sharedGeneric: true),
                                       maxLength: maxLength, replyCounts: replyCounts, pooling: pooling)
        let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                    tokenizerFile: folder.appendingPathComponent("tokenizer.json"), config: config)
        Backbones.initializeRandomly(model.parameters, seed: 11)
        model.initializeUserModelAndHead(seed: 11)
        var rng = RandomSource(seed: 5)
        for entry in model.parameters.entries where entry.group != .backbone {
            for i in 0..<entry.count { model.parameters.values[entry.offset + i] += 0.05 * rng.nextNormal() }
        }
        return model
    }

    /// Candidates of two prompts for known, unknown and missing users, with user text, a
    /// duplicate, an empty reply and a prompt long enough to be cut.
    static let items: [ScoringItem] = {
        let short = "Human: How do I boil an egg?\n\nAssistant:"
        let long = "Human: " + String(repeating: "Tell me a long story about the sea and ships. ", count: 12) + "\n\nAssistant:"
        var items: [ScoringItem] = []
        for user in ["ann", "bob", "stranger", nil] as [String?] {
            for reply in ["Boil it for nine minutes.", "Put it in boiling water, wait, then cool it in cold water.", ""] {
                items.append(ScoringItem(userID: user, prompt: short, response: reply))
            }
            items.append(ScoringItem(userID: user, userInfo: "I like short answers.", prompt: short, response: "Nine minutes."))
            items.append(ScoringItem(userID: user, prompt: long, response: "Once upon a time a ship left the harbour."))
        }
        items.append(items[0])
        return items
    }()

    func assertScorerMatchesForward(_ model: RewardModel, items: [ScoringItem] = ScorerTests.items, tokensPerBatch: Int = 8192,
                                    file: StaticString = #filePath, line: UInt = #line) throws {
        let scorer = Scorer(model: model, users: Self.users, tokensPerBatch: tokensPerBatch)
        let scored = scorer.score(items)
        let inputs = items.map { item in
            RewardInput(user: Self.users.index(of: item.userID ?? ""),
                        explicit: model.tokenizer.encode(item.userInfo ?? "", addSpecialTokens: false).map(Int32.init),
                        prompt: model.tokenizer.encode(item.prompt, addSpecialTokens: false).map(Int32.init),
                        reply: model.tokenizer.encode(item.response, addSpecialTokens: false).map(Int32.init))
        }
        let expected = model.forward(inputs, training: false)
        for (k, (got, want)) in zip(scored, expected).enumerated() {
            XCTAssertEqual(got.score, want, accuracy: 1e-5 * max(1, abs(want)), "item \(k) on \(Compute.backend)", file: file, line: line)
        }
        XCTAssertEqual(scored.map(\.knownUser), items.map { $0.userID.map(Self.users.contains) ?? false }, file: file, line: line)
        XCTAssertEqual(scored.map(\.truncated), items.map { $0.prompt.count > 200 }, "the long prompt is cut to the window", file: file, line: line)
    }

    /// On both sgemm backends: the Scorer runs `Backbone.infer`, whose kernels differ from the
    /// training forward's (fused passes, [in, out] matrices, per-worker attention scratch).
    func testEveryAggregatorAndUserModelOnBERT() throws {
        let folder = try TinyBackbones.bert()
        try TestSupport.eachBackend { _ in
            for aggregator in Aggregator.allCases {
                for kind in UserModelKind.allCases {
                    try assertScorerMatchesForward(try Self.model(aggregator, kind, folder: folder))
                }
            }
        }
    }

    func testSmallTokenBudgetSplitsBatchesWithoutChangingScores() throws {
        try assertScorerMatchesForward(try Self.model(.linearHead, .individual, folder: try TinyBackbones.bert()), tokensPerBatch: 1)
    }

    /// GPT-2 shares each prompt's prefix through the KV cache; scores must equal full forwards.
    func testCausalPrefixSharingOnGPT2() throws {
        let folder = try TinyBackbones.gpt2()
        try TestSupport.eachBackend { _ in
            for aggregator in Aggregator.allCases {
                let model = try Self.model(aggregator, .individual, folder: folder, maxLength: 96)
                try assertScorerMatchesForward(model)
                try assertScorerMatchesForward(model, tokensPerBatch: 40)
            }
        }
    }

    /// The Llama family shares each prompt's prefix through its grouped-query KV cache: the
    /// replies of two prompts, for several users and user texts (byte-level tokens, all inside
    /// the fixture's 64 positions), score as full forwards do, whole or in small packed batches.
    func testCausalPrefixSharingOnLlama() throws {
        let folder = TestSupport.repoRoot.appendingPathComponent("Tests/Fixtures/llama-family/llama")
        var items: [ScoringItem] = []
        for (prompt, replies) in [("Human: hi\n\nAssistant:", ["Hello there.", "Hi! How can I help?", "Hey.", ""]),
                                  ("Human: egg?\n\nAssistant:", ["Boil it.", "Nine minutes, then cold water."])] {
            for user in ["ann", "bob", nil] as [String?] {
                items += replies.map { ScoringItem(userID: user, prompt: prompt, response: $0) }
                items += replies.prefix(2).map { ScoringItem(userID: user, userInfo: "Short.", prompt: prompt, response: $0) }
            }
        }
        try TestSupport.eachBackend { _ in
            for aggregator in Aggregator.allCases {
                let model = try Self.model(aggregator, .individual, folder: folder, maxLength: 64)
                XCTAssertTrue(model.backbone is any PrefixSharingBackbone)
                try assertScorerMatchesForward(model, items: items)
                try assertScorerMatchesForward(model, items: items, tokensPerBatch: 40)
            }
        }
    }

    /// Reply counts read the reply's rows: whole sequences from their prompt's end on, and a
    /// shared prefix's continuations from their first row.
    func testReplyCountsOnBothBackbonesAndPaths() throws {
        let bert = try TinyBackbones.bert(), gpt2 = try TinyBackbones.gpt2()
        for aggregator in Aggregator.allCases {
            try assertScorerMatchesForward(try Self.model(aggregator, .individual, folder: bert, replyCounts: 3))
            try assertScorerMatchesForward(try Self.model(aggregator, .individual, folder: bert, replyCounts: 3, pooling: .reply))
            let causal = try Self.model(aggregator, .individual, folder: gpt2, maxLength: 96, replyCounts: 3)
            try assertScorerMatchesForward(causal)
            try assertScorerMatchesForward(causal, tokensPerBatch: 40)
        }
    }

    func testPrefixSharingComputesThePromptOnce() throws {
        let model = try Self.model(.linearHead, .individual, folder: try TinyBackbones.gpt2(), maxLength: 96)
        let scorer = Scorer(model: model, users: Self.users)
        let prompt = "Human: What is the capital of France? Please answer in one sentence.\n\nAssistant:"
        let replies = ["Paris.", "It is Paris.", "The capital of France is Paris."]
        let prepared = scorer.preparer.prepare(replies.map { ScoringItem(userID: "ann", prompt: prompt, response: $0) })
        _ = scorer.score(prepared)
        XCTAssertEqual(scorer.statistics.tokensComputed, prepared.reduce(0) { $0 + $1.tokens }, "counts whole sequences")
        XCTAssertEqual(Set(prepared.map { $0.sequence.prefixLength }).count, 1, "one shared prefix")
        XCTAssertGreaterThan(prepared[0].sequence.prefixLength, 10)
    }

    func testDuplicatesAreComputedOnceAndUsersShareTheLinearHeadsH() throws {
        let model = try Self.model(.linearHead, .individual, folder: try TinyBackbones.bert())
        let scorer = Scorer(model: model, users: Self.users)
        let item = ScoringItem(userID: "ann", prompt: "Human: hi\n\nAssistant:", response: "Hello!")
        let prepared = scorer.preparer.prepare([item, item, ScoringItem(userID: "bob", prompt: item.prompt, response: item.response)])
        let scores = scorer.score(prepared)
        XCTAssertEqual(scorer.statistics.uniqueSequences, 1)
        XCTAssertEqual(scorer.statistics.tokensComputed, prepared[0].tokens)
        XCTAssertEqual(scores[0], scores[1])
        XCTAssertNotEqual(scores[0], scores[2], "another user's vector gives another reward from the same h")
    }

    /// The h cache returns the uncached scores, counts hits, and runs no backbone tokens for them.
    /// (Not bit for bit: an h computed in another batch went through sgemms of another shape,
    /// which may round the last bit differently; the tolerance is a few float ulps.)
    func testCachedScoresEqualUncachedScores() throws {
        let model = try Self.model(.linearHead, .cluster, folder: try TinyBackbones.bert())
        let plain = Scorer(model: model, users: Self.users)
        let cached = Scorer(model: model, users: Self.users, cacheEntries: 4)
        let candidates = ["One.", "Two words.", "Three words here.", "Four words are here.", "Five words are here now."]
        func assertClose(_ a: [ScoredItem], _ b: [ScoredItem], _ message: String) {
            XCTAssertEqual(a.map(\.knownUser), b.map(\.knownUser), message)
            for (x, y) in zip(a, b) { XCTAssertEqual(x.score, y.score, accuracy: 1e-6 * max(1, abs(y.score)), message) }
        }
        for round in 0..<3 {
            for user in ["ann", "bob", "cy", "stranger"] {
                let items = candidates.map { ScoringItem(userID: user, prompt: "Human: count\n\nAssistant:", response: $0) }
                assertClose(cached.score(items), plain.score(items), "round \(round), user \(user)")
            }
        }
        XCTAssertEqual(cached.cachedStates, 4, "five texts through a four-entry cache")
        XCTAssertGreaterThan(cached.statistics.cacheHits, 0)
        let few = candidates.prefix(3).map { ScoringItem(userID: "ann", prompt: "Human: count\n\nAssistant:", response: $0) }
        _ = cached.score(Array(few))
        let before = cached.statistics
        assertClose(cached.score(Array(few)), plain.score(Array(few)), "repeated request")
        XCTAssertEqual(cached.statistics.cacheHits - before.cacheHits, 3)
        XCTAssertEqual(cached.statistics.tokensComputed, before.tokensComputed, "hits run no backbone tokens")
    }

    /// The cache is keyed by the whole sequence: one reply under two prompts, or under two user
    /// texts, has two h (and, with a soft prompt, one per user). Each item is scored in a call
    /// of its own, so an item can only be right by computing its h or finding its own in the cache.
    func testCacheKeepsPromptsUserTextsAndUsersApart() throws {
        let folder = try TinyBackbones.bert()
        let reply = "Boil it for nine minutes, then cool it in cold water."
        let items = [
            ScoringItem(userID: "ann", prompt: "Human: How do I boil an egg?\n\nAssistant:", response: reply),
            ScoringItem(userID: "ann", prompt: "Human: What should I never do with a phone?\n\nAssistant:", response: reply),
            ScoringItem(userID: "ann", userInfo: "I am a chef.", prompt: "Human: How do I boil an egg?\n\nAssistant:", response: reply),
            ScoringItem(userID: "ann", userInfo: "I have never cooked.", prompt: "Human: How do I boil an egg?\n\nAssistant:", response: reply),
            ScoringItem(userID: "bob", userInfo: "I have never cooked.", prompt: "Human: How do I boil an egg?\n\nAssistant:", response: reply),
        ]
        for aggregator in Aggregator.allCases {
            let model = try Self.model(aggregator, .individual, folder: folder)
            let plain = Scorer(model: model, users: Self.users), cached = Scorer(model: model, users: Self.users, cacheEntries: 64)
            let expected = items.map { plain.score([$0])[0].score }
            XCTAssertEqual(Set(expected).count, items.count, "\(aggregator): every item has its own score (else the test shows nothing)")
            var hitsBefore = 0
            for round in 0..<2 {
                hitsBefore = cached.statistics.cacheHits
                for (k, item) in items.enumerated() {
                    let got = cached.score([item])[0].score
                    XCTAssertEqual(got, expected[k], accuracy: 1e-6 * max(1, abs(expected[k])), "\(aggregator), round \(round), item \(k)")
                }
            }
            let distinctSequences = aggregator == .linearHead ? 4 : 5  // the linear head's h is the same for every user
            XCTAssertEqual(cached.cachedStates, distinctSequences, "\(aggregator)")
            XCTAssertEqual(cached.statistics.cacheHits - hitsBefore, items.count, "\(aggregator): the second round is all hits")
        }
    }

    /// The entries are bounded by memory as well, and a capacity far beyond it costs nothing at start.
    func testCacheMemoryBoundsTheEntries() throws {
        let model = try Self.model(.linearHead, .individual, folder: try TinyBackbones.bert())
        let (C, L) = (model.backbone.hiddenSize, model.config.maxLength)
        let perEntry = 4 * C + 4 * L + HiddenStateCache.entryOverhead
        let scorer = Scorer(model: model, users: Self.users, cacheEntries: 4_000_000_000_000, cacheMemory: 1 << 20)
        XCTAssertEqual(scorer.cacheCapacity, (1 << 20) / perEntry)
        XCTAssertEqual(Scorer(model: model, users: Self.users, cacheEntries: 10, cacheMemory: 1 << 20).cacheCapacity, 10)
        XCTAssertEqual(Scorer(model: model, users: Self.users, cacheEntries: 10, cacheMemory: perEntry - 1).cacheCapacity, 0, "no room for one")
    }
}

/// The LRU cache against a plain reference model of recency.
final class HiddenStateCacheTests: XCTestCase {
    /// Within the first storage (5 entries) and across its growth (150 entries: 64, 128, 150).
    func testMatchesAReferenceLRU() {
        for capacity in [5, 150] { checkAgainstReferenceLRU(capacity: capacity, keys: capacity * 2 - 1) }
    }

    /// Storage follows the entries held (at most double, at least what is held), not the capacity.
    func testStorageGrowsWithUseUpToTheCapacity() {
        let width = 384
        let cache = HiddenStateCache(capacity: 1_000, width: width)
        XCTAssertEqual(cache.reservedEntries, 0, "nothing before the first insert")
        let h = [Float](repeating: 1, count: width)
        let slack = 4096 / (4 * width) + 1  // malloc rounds a large block up to whole pages
        for k in 0..<2_500 {
            h.withUnsafeBufferPointer { cache.insert(Self.key(k), $0.baseAddress!) }
            XCTAssertGreaterThanOrEqual(cache.reservedEntries, cache.count, "insert \(k)")
            XCTAssertLessThanOrEqual(cache.reservedEntries, max(2 * cache.count, HiddenStateCache.initialSlots) + slack, "insert \(k)")
            XCTAssertLessThanOrEqual(cache.reservedEntries, cache.capacity + slack, "insert \(k)")
        }
        XCTAssertEqual(cache.count, 1_000)
    }

    static func key(_ k: Int) -> ModelSequence {
        ModelSequence(implicitUser: nil, explicit: [], implicitCount: 0, text: [Int32(k)], replyStart: 0)
    }

    func checkAgainstReferenceLRU(capacity: Int, keys: Int) {
        let width = 3
        let cache = HiddenStateCache(capacity: capacity, width: width)
        var reference: [Int] = []  // most recent last
        var values: [Int: [Float]] = [:]
        var rng = RandomSource(seed: 9)
        let key = Self.key
        var out = [Float](repeating: 0, count: width)
        for step in 0..<4_000 {
            let k = Int(rng.next() % UInt64(keys))
            let hit = out.withUnsafeMutableBufferPointer { cache.lookup(key(k), into: $0.baseAddress!) }
            XCTAssertEqual(hit, reference.contains(k), "capacity \(capacity), step \(step)")
            if hit {
                XCTAssertEqual(out, values[k])
                reference.removeAll { $0 == k }
                reference.append(k)
            } else {
                let v = (0..<width).map { _ in rng.nextUniform() }
                values[k] = v
                v.withUnsafeBufferPointer { cache.insert(key(k), $0.baseAddress!) }
                reference.append(k)
                if reference.count > capacity { reference.removeFirst() }
            }
            XCTAssertEqual(cache.count, reference.count, "capacity \(capacity), step \(step)")
        }
    }
}
