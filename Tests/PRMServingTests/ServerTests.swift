import CZeroMQ
import Foundation
import XCTest
import PRMCore
import PRMModel
import PRMScoring
import PRMScoringTestSupport
import PRMTestSupport
@testable import PRMServing

/// A real `ScoringServer` on a real TCP socket, driven by the Swift client.
final class ServerTests: XCTestCase {
    static let users = TinyScorers.users

    static func scorer(cacheEntries: Int = 0) throws -> Scorer { try TinyScorers.linearHead(cacheEntries: cacheEntries) }

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

    /// A drain answers every request already accepted before run() returns. Each client queues
    /// its requests, then an `info` on the same socket: the server reads a socket's messages in
    /// order and answers `info` at once, so its reply proves the requests before it were accepted.
    /// Only then does the drain start, and no one sends after it. (The clients used to keep sending
    /// one request at a time through the drain: those that reached the server after it had exited
    /// each waited out a 20 s timeout, past the test's limit.)
    func testShutdownAnswersEverythingAccepted() throws {
        let (endpoint, _, stop) = try serve(try Self.scorer())
        let context = try ZMQContext()
        let clients = try (0..<4).map { _ in
            let socket = try ZMQSocket(context, kind: ZMQ_DEALER)
            try socket.set(ZMQ_LINGER, Int32(0))
            try socket.connect(endpoint)
            return socket
        }
        var expected: [Set<String>] = []
        for (number, socket) in clients.enumerated() {
            let ids = (0..<5).map { "c\(number)-\($0)" }
            for id in ids { _ = try socket.send([Self.body(id: id, op: "rank")]) }
            _ = try socket.send([Self.body(id: "c\(number)-info", op: "info")])
            expected.append(Set(ids))
        }
        var answered: [[String: String]] = Array(repeating: [:], count: clients.count)
        for (number, socket) in clients.enumerated() {
            try Self.collect(on: socket, into: &answered[number], until: { $0["c\(number)-info"] != nil })
        }
        stop()
        for (number, socket) in clients.enumerated() {
            try Self.collect(on: socket, into: &answered[number], until: { $0.count == 6 })
            answered[number]["c\(number)-info"] = nil
            XCTAssertEqual(Set(answered[number].keys), expected[number], "client \(number): every accepted request answered")
            XCTAssertTrue(answered[number].values.allSatisfy { $0 == "ok" }, "client \(number): \(answered[number])")
            XCTAssertNil(try socket.receive(dontWait: true), "nothing answered twice")
        }
    }

    /// A request body as the Swift client writes it.
    static func body(id: String, op: String) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("v"); w.number(1)
        w.key("id"); w.string(id)
        w.key("op"); w.string(op)
        if op == "rank" {
            w.key("user_id"); w.string("ann")
            w.key("prompt"); w.string(prompt)
            w.key("candidates"); w.beginArray(); for c in candidates { w.string(c) }; w.endArray()
        }
        w.endObject()
        return w.bytes
    }

    /// Receives replies (id → "ok" or the error code) until `done` holds; fails after 20 s of silence.
    static func collect(on socket: ZMQSocket, into answered: inout [String: String], until done: ([String: String]) -> Bool) throws {
        while !done(answered) {
            var poll = PollSet()
            let item = poll.add(socket)
            try poll.wait(timeoutMs: 20_000)
            guard poll.readable(item), let frames = try socket.receive(dontWait: true), let body = frames.last else {
                return XCTFail("no reply within 20 s; have \(answered)")
            }
            let reply = try JSONReader.parse(body).object
            guard let id = reply?["id"]?.string else { return XCTFail("a reply without a string id") }
            answered[id] = reply?["ok"]?.bool == true ? "ok" : reply?["error"]?.object?["code"]?.string ?? "?"
        }
    }

    /// A body over the server's max_message_bytes is refused by the client before it is sent,
    /// naming both sizes. Sent, it would be over four times the limit: ZeroMQ drops the
    /// connection and the call only times out.
    func testTheClientRefusesABodyOverTheServersLimit() throws {
        let (endpoint, _, _) = try serve(try Self.scorer()) { $0.limits.maxMessageBytes = 1_024 }
        let client = try ScoringClient(endpoint: endpoint, timeout: 10, retries: 0)
        let started = MonotonicClock.now
        XCTAssertThrowsError(try client.rank(prompt: prompt, candidates: [String(repeating: "x", count: 100_000)])) { error in
            guard case ClientError.tooLarge(let bytes, let limit) = error else { return XCTFail("\(error)") }
            XCTAssertGreaterThan(bytes, 100_000)
            XCTAssertEqual(limit, 1_024)
            XCTAssertTrue("\(error)".contains("max_message_bytes of 1024"), "\(error)")
        }
        XCTAssertLessThan(MonotonicClock.now - started, 5, "refused at once, not after a timeout")
        XCTAssertEqual(try client.rank(prompt: prompt, candidates: ["ok"]).scores.count, 1, "the next request is sent and served")
    }

    /// A peer whose `info` is an error (an older or other implementation): the client assumes the
    /// protocol's default limit, and sends nothing over it.
    func testTheClientAssumesTheDefaultLimitWhenInfoFails() throws {
        let context = try ZMQContext()
        let peer = try ZMQSocket(context, kind: ZMQ_ROUTER)
        try peer.set(ZMQ_LINGER, Int32(0))
        try peer.bind("tcp://127.0.0.1:0")
        let client = try ScoringClient(endpoint: try peer.string(ZMQ_LAST_ENDPOINT), timeout: 10, retries: 0)
        let requests = Outcomes()
        let done = DispatchSemaphore(value: 0)
        let answering = UncheckedSendable(peer)
        Thread {
            defer { done.signal() }
            guard let frames = try? answering.value.receive(), let body = frames.last,
                  let request = try? JSONReader.parse(body).object, let id = request["id"]?.number?.integer else { return }
            requests.add(request["op"]?.string ?? "?")
            let error = "{\"v\":1,\"id\":\(id),\"ok\":false,\"error\":{\"code\":\"unknown_op\",\"message\":\"no info here\"}}"
            _ = try? answering.value.send(Array(frames.dropLast()) + [Array(error.utf8)])
        }.start()
        let oversized = String(repeating: "x", count: ServerLimits().maxMessageBytes)
        XCTAssertThrowsError(try client.rank(prompt: prompt, candidates: [oversized])) { error in
            guard case ClientError.tooLarge(_, let limit) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(limit, 1_048_576)
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        var poll = PollSet()
        let item = poll.add(peer)
        try poll.wait(timeoutMs: 200)
        XCTAssertFalse(poll.readable(item), "the oversized request was not sent")
        XCTAssertEqual(requests.all, ["info"])
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
