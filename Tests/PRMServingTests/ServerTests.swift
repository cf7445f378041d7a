import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMTestSupport
@testable import PRMServing

/// A real `ScoringServer` on a real TCP socket, driven by the Swift client.
final class ServerTests: XCTestCase {
    static let users = UserTable(ids: ["ann", "bob"])

    static func scorer(cacheEntries: Int = 0) throws -> Scorer {
        let folder = try TinyBackbones.bert()
        let config = RewardModelConfig(aggregator: .linearHead,
                                       userModel: UserModelConfig(kind: .individual, tokens: 1, users: users.count, clusters: 2, sharedGeneric: true),
                                       maxLength: 48)
        let model = try RewardModel(backboneConfig: folder.appendingPathComponent("config.json"),
                                    tokenizerFile: folder.appendingPathComponent("tokenizer.json"), config: config)
        Backbones.initializeRandomly(model.parameters, seed: 3)
        model.initializeUserModelAndHead(seed: 3)
        var rng = RandomSource(seed: 4)
        for entry in model.parameters.entries where entry.group == .user {
            for i in 0..<entry.count { model.parameters.values[entry.offset + i] += 0.1 * rng.nextNormal() }
        }
        return Scorer(model: model, users: users, cacheEntries: cacheEntries)
    }

    /// Runs a server on a background thread; the returned closure drains it and waits for its exit.
    func serve(_ scorer: Scorer, _ configure: (inout ServerSettings) -> Void = { _ in }) throws -> (endpoint: String, server: ScoringServer, stop: () -> Void) {
        var settings = ServerSettings()
        settings.bind = "tcp://127.0.0.1:0"
        settings.modelPath = "tiny"
        configure(&settings)
        let running = try BackgroundServer(try ScoringServer(scorer: scorer, settings: settings))
        let stop: () -> Void = {
            do { try running.stop(timeout: 20) } catch { XCTFail("the server did not drain: \(error)") }
        }
        addTeardownBlock { stop() }
        return (running.endpoint, running.server, stop)
    }

    static let prompt = "Human: What should I cook tonight?\n\nAssistant:"
    static let candidates = ["Pasta.", "A quick stir-fry with vegetables and rice.", "Soup, because it is cold outside and soup is warming."]
    var prompt: String { Self.prompt }
    var candidates: [String] { Self.candidates }

    func testRankAndScoreThroughTheSocketEqualInProcessScores() throws {
        let (endpoint, _, stop) = try serve(try Self.scorer())
        let reference = try Self.scorer()
        let client = try ScoringClient(endpoint: endpoint, timeout: 10, retries: 0)
        for user in ["ann", "bob", "stranger"] {
            let reply = try client.rank(prompt: prompt, candidates: candidates, userID: user, topK: 2)
            let expected = reference.score(candidates.map { ScoringItem(userID: user, prompt: prompt, response: $0) })
            XCTAssertEqual(reply.scores, expected.map(\.score), "the same computation, bit for bit, when requests are alone")
            XCTAssertEqual(reply.knownUser, user != "stranger")
            XCTAssertEqual(reply.order.count, 2)
            XCTAssertEqual(reply.order.first, expected.indices.max { expected[$0].score < expected[$1].score })
        }
        let items = [ScoringItem(userID: "ann", prompt: prompt, response: "Pasta."),
                     ScoringItem(userID: nil, userInfo: "likes spicy food", prompt: prompt, response: "Curry.")]
        let scored = try client.score(items)
        XCTAssertEqual(scored.scores, reference.score(items).map(\.score))
        XCTAssertEqual(scored.knownUser, [true, false])
        XCTAssertEqual(try client.info()["model"]?.object?["users"]?.number?.integer, 2)
        XCTAssertEqual(try client.health()["status"]?.string, "serving")
        XCTAssertEqual(try client.metrics()["requests"]?.object?["rank"]?.number?.integer, 3)
        stop()
    }

    func testErrorRepliesReachTheClientWithTheirCode() throws {
        let (endpoint, _, _) = try serve(try Self.scorer()) { $0.limits.maxCandidates = 2 }
        let client = try ScoringClient(endpoint: endpoint, timeout: 10, retries: 0)
        XCTAssertThrowsError(try client.rank(prompt: prompt, candidates: candidates)) { error in
            guard case ClientError.server(let code, let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, "too_many_candidates")
            XCTAssertTrue(message.contains("the limit is 2"), message)
        }
        XCTAssertEqual(try client.rank(prompt: prompt, candidates: ["ok"]).scores.count, 1, "the next request is served")
    }

    /// The schemas say a score is a number and JSON has no NaN: a request whose scores come out
    /// NaN (bob's vector is broken here) is answered `internal` naming the cause, never with
    /// null; it counts as an error, and the next request is served.
    func testNonFiniteScoreIsAnInternalErrorNotNull() throws {
        let scorer = try Self.scorer()
        try XCTUnwrap(scorer.model.userModel.row(Self.users.index(of: "bob"))).value[0] = .nan
        let (endpoint, _, _) = try serve(scorer)
        let client = try ScoringClient(endpoint: endpoint, timeout: 10, retries: 0)
        XCTAssertThrowsError(try client.rank(prompt: prompt, candidates: candidates, userID: "bob")) { error in
            guard case ClientError.server(let code, let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, "internal")
            XCTAssertTrue(message.contains("score 1 of 3 is nan"), message)
        }
        XCTAssertThrowsError(try client.score([ScoringItem(userID: "ann", prompt: prompt, response: "Pasta."),
                                               ScoringItem(userID: "bob", prompt: prompt, response: "Pasta.")])) { error in
            guard case ClientError.server(let code, let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(code, "internal")
            XCTAssertTrue(message.contains("score 2 of 2 is nan"), message)
        }
        XCTAssertEqual(try client.rank(prompt: prompt, candidates: candidates, userID: "ann").scores.count, 3, "the next request is served")
        XCTAssertEqual(try client.metrics()["errors"]?.object?["internal"]?.number?.integer, 2)
    }

    /// Several clients at once: each gets its own replies, and the compute thread batches them.
    func testConcurrentClientsEachGetTheirOwnReplies() throws {
        let (endpoint, _, _) = try serve(try Self.scorer()) { $0.maxWaitMs = 5 }
        let reference = try Self.scorer()
        let expected = ["ann", "bob", "stranger"].map { user in
            reference.score(candidates.map { ScoringItem(userID: user, prompt: prompt, response: $0) }).map(\.score)
        }
        let failures = Outcomes()
        DispatchQueue.concurrentPerform(iterations: 6) { worker in
            do {
                let client = try ScoringClient(endpoint: endpoint, timeout: 20, retries: 0)
                for round in 0..<10 {
                    let user = (worker + round) % 3
                    let reply = try client.rank(prompt: Self.prompt, candidates: Self.candidates, userID: ["ann", "bob", "stranger"][user])
                    for (got, want) in zip(reply.scores, expected[user]) where abs(got - want) > 1e-5 {
                        failures.add("worker \(worker) round \(round): \(got) vs \(want)")
                    }
                }
            } catch {
                failures.add("worker \(worker): \(error)")
            }
        }
        XCTAssertEqual(failures.all, [])
        let metrics = try ScoringClient(endpoint: endpoint, timeout: 10).metrics()
        XCTAssertEqual(metrics["requests"]?.object?["rank"]?.number?.integer, 60)
    }

    /// A drain answers every request already accepted before run() returns.
    func testShutdownAnswersEverythingAccepted() throws {
        let (endpoint, server, stop) = try serve(try Self.scorer())
        let replies = Outcomes()
        let group = DispatchGroup()
        for worker in 0..<4 {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let client = try? ScoringClient(endpoint: endpoint, timeout: 20, retries: 0) else { return }
                for _ in 0..<5 {
                    do {
                        _ = try client.rank(prompt: Self.prompt, candidates: Self.candidates, userID: "ann")
                        replies.add("ok")
                    } catch ClientError.server(let code, _) {
                        replies.add(code)
                    } catch {
                        replies.add("lost \(worker): \(error)")
                    }
                }
            }.start()
        }
        Thread.sleep(forTimeInterval: 0.05)
        stop()
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        let outcomes = replies.all
        XCTAssertEqual(outcomes.count, 20)
        XCTAssertTrue(outcomes.allSatisfy { $0 == "ok" || $0 == "shutting_down" || $0.hasPrefix("lost") }, "\(outcomes)")
        XCTAssertEqual(outcomes.filter { $0.hasPrefix("lost") && !$0.contains("timeout") && !$0.contains("no reply") }, [],
                       "nothing failed in another way")
        _ = server
    }
}

/// Strings appended by several client threads at once (NSMutableArray is not thread-safe: unguarded
/// appends from four threads crashed testShutdownAnswersEverythingAccepted).
private final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []

    func add(_ item: String) {
        lock.lock()
        defer { lock.unlock() }
        items.append(item)
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}
