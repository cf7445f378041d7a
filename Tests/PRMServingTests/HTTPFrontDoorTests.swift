import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import PRMCore
import PRMScoring
import PRMScoringTestSupport
@testable import PRMServing

/// A real `ScoringServer` with its HTTP front door on loopback, driven by URLSession (and by raw
/// sockets where a client must misbehave): every endpoint, the ZeroMQ path as the reference,
/// bad bodies, limits, tokens and the drain.
final class HTTPFrontDoorTests: XCTestCase {
    static let prompt = ServerTests.prompt
    static let candidates = ServerTests.candidates

    struct Running {
        let endpoint: String
        let http: String
        let server: ScoringServer
        let stop: () -> Void
    }

    /// A server with `--http 127.0.0.1:0`; `configure` adjusts the settings.
    func serve(_ configure: (inout ServerSettings) -> Void = { _ in }) throws -> Running {
        var settings = ServerSettings()
        settings.bind = "tcp://127.0.0.1:0"
        settings.modelPath = "tiny"
        settings.http = HTTPSettings(address: "127.0.0.1:0")
        configure(&settings)
        let running = try BackgroundServer(try ScoringServer(scorer: try ServerTests.scorer(), settings: settings))
        var stopped = false
        let stop: () -> Void = {
            guard !stopped else { return }
            stopped = true
            do { try running.stop(timeout: 20) } catch { XCTFail("the server did not drain: \(error)") }
        }
        addTeardownBlock { stop() }
        return Running(endpoint: running.endpoint, http: "http://" + (try XCTUnwrap(running.server.httpAddress)), server: running.server, stop: stop)
    }

    struct Response {
        let status: Int
        let body: Data
        var json: Any? { try? JSONSerialization.jsonObject(with: body) }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
        var code: String? { (object["error"] as? [String: Any])?["code"] as? String }
        var message: String { (object["error"] as? [String: Any])?["message"] as? String ?? "" }
    }

    func call(_ base: String, _ path: String, method: String = "POST", body: String? = nil, token: String? = nil) throws -> Response {
        try Self.request(base, path, method: method, body: body, token: token)
    }

    /// One request through URLSession; fails the test on a transport error.
    static func request(_ base: String, _ path: String, method: String = "POST", body: String? = nil, token: String? = nil) throws -> Response {
        var request = URLRequest(url: try XCTUnwrap(URL(string: base + path)), timeoutInterval: 30)
        request.httpMethod = method
        if let body { request.httpBody = Data(body.utf8) }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let done = DispatchSemaphore(value: 0)
        let result = UncheckedSendable(NSMutableArray())
        URLSession.shared.dataTask(with: request) { data, response, error in
            result.value.add([data ?? Data(), (response as? HTTPURLResponse)?.statusCode ?? -1, error.map { "\($0)" } ?? ""])
            done.signal()
        }.resume()
        done.wait()
        let entry = try XCTUnwrap(result.value.firstObject as? [Any])
        let status = try XCTUnwrap(entry[1] as? Int)
        XCTAssertNotEqual(status, -1, "no HTTP response for \(method) \(path): \(entry[2])")
        return Response(status: status, body: try XCTUnwrap(entry[0] as? Data))
    }

    static func scores(_ value: Any?) -> [Double] { (value as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? [] }

    func assertClose(_ got: [Double], _ want: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        for (a, b) in zip(got, want) { XCTAssertEqual(a, Double(b), accuracy: 1e-5, what, file: file, line: line) }
    }

    // MARK: - Endpoints

    func testEveryEndpointAnswersWithTheScoresOfTheZeroMQPath() throws {
        let running = try serve()
        let client = try ScoringClient(endpoint: running.endpoint, timeout: 10, retries: 0)
        let (prompt, candidates) = (Self.prompt, Self.candidates)
        let zmqRank = try client.rank(prompt: prompt, candidates: candidates, userID: "ann")
        let promptJSON = try Self.json(prompt), candidatesJSON = try Self.json(candidates)

        for op in ["", #""op":"rank","#] {
            let rank = try call(running.http, "/v1/rank", body: #"{"v":1,"id":7,\#(op)"user_id":"ann","prompt":\#(promptJSON),"candidates":\#(candidatesJSON)}"#)
            XCTAssertEqual(rank.status, 200, String(decoding: rank.body, as: UTF8.self))
            XCTAssertEqual(rank.object["id"] as? Int, 7)
            assertClose(Self.scores(rank.object["scores"]), zmqRank.scores, "/v1/rank")
            XCTAssertEqual(rank.object["order"] as? [Int], zmqRank.order)
        }

        let items = [ScoringItem(userID: "bob", prompt: prompt, response: candidates[0]), ScoringItem(userID: nil, prompt: prompt, response: candidates[1])]
        let zmqScore = try client.score(items)
        let score = try call(running.http, "/v1/score", body: #"{"v":1,"id":"s","items":[{"user_id":"bob","prompt":\#(promptJSON),"response":\#(try Self.json(candidates[0]))},{"prompt":\#(promptJSON),"response":\#(try Self.json(candidates[1]))}]}"#)
        XCTAssertEqual(score.status, 200)
        assertClose(Self.scores(score.object["scores"]), zmqScore.scores, "/v1/score")
        XCTAssertEqual(score.object["known_user"] as? [Bool], [true, false])

        // OpenRLHF: query = prompt + response; the user from labels (a string, an object, null).
        let queries = try Self.json(candidates.map { prompt + $0 })
        let getReward = try call(running.http, "/get_reward", body: #"{"query":\#(queries),"prompts":\#(try Self.json(Array(repeating: prompt, count: 3))),"labels":["ann",{"user_id":"bob"},null]}"#)
        XCTAssertEqual(getReward.status, 200, String(decoding: getReward.body, as: UTF8.self))
        let expected = try client.score(zip(["ann", "bob", nil], candidates).map { ScoringItem(userID: $0, prompt: prompt, response: $1) })
        assertClose(Self.scores(getReward.object["rewards"]), expected.scores, "/get_reward rewards")
        assertClose(Self.scores(getReward.object["scores"]), expected.scores, "/get_reward scores")
        XCTAssertEqual((getReward.object["extra_logs"] as? [String: Any])?["known_user"] as? [Int], [1, 1, 0])

        // slime: one sample, the label a user id.
        let reward = try call(running.http, "/reward", body: #"{"prompt":\#(promptJSON),"response":\#(try Self.json(candidates[2])),"label":"bob"}"#)
        XCTAssertEqual(reward.status, 200)
        let slimeExpected = try client.score([ScoringItem(userID: "bob", prompt: prompt, response: candidates[2])])
        assertClose(Self.scores([reward.object["reward"] as Any]), slimeExpected.scores, "/reward")
        XCTAssertEqual(reward.object["user_id"] as? String, "bob")
        XCTAssertEqual(reward.object["known_user"] as? Bool, true)

        // TEI rerank: best first.
        let rerank = try call(running.http, "/rerank", body: #"{"query":\#(promptJSON),"texts":\#(candidatesJSON),"user_id":"ann"}"#)
        XCTAssertEqual(rerank.status, 200)
        let ranked = try XCTUnwrap(rerank.json as? [[String: Any]])
        XCTAssertEqual(ranked.compactMap { $0["index"] as? Int }, zmqRank.order)
        assertClose(ranked.compactMap { ($0["score"] as? NSNumber)?.doubleValue }, zmqRank.order.map { zmqRank.scores[$0] }, "/rerank")

        let info = try call(running.http, "/v1/info", method: "GET")
        XCTAssertEqual(info.status, 200)
        XCTAssertEqual((info.object["model"] as? [String: Any])?["users"] as? Int, 2)
        let metrics = try call(running.http, "/v1/metrics", method: "GET")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertGreaterThanOrEqual((metrics.object["requests"] as? [String: Any])?["rank"] as? Int ?? 0, 3)
        XCTAssertEqual(try call(running.http, "/health/live", method: "GET").status, 200)
        let ready = try call(running.http, "/health/ready", method: "GET")
        XCTAssertEqual(ready.status, 200)
        XCTAssertEqual(ready.object["status"] as? String, "serving")
        let prometheus = try call(running.http, "/metrics", method: "GET")
        XCTAssertEqual(prometheus.status, 200)
        let text = String(decoding: prometheus.body, as: UTF8.self)
        XCTAssertTrue(text.contains(#"prm_http_requests_total{listener="http",endpoint="/rerank",status="200"} 1"#), text)
        XCTAssertTrue(text.contains(#"prm_requests_total{op="rank",code="ok"}"#), text)
    }

    /// Malformed JSON, wrong types, a contradicting op, a prompt that is not the query's prefix,
    /// wrong methods and paths: each gets its status and a v1 error naming what was wrong, and
    /// the server goes on serving.
    func testBadRequestsGetTheirStatusAndCode() throws {
        let running = try serve { $0.limits.maxCandidates = 2 }
        let cases: [(path: String, method: String, body: String?, status: Int, code: String, mentioning: String)] = [
            ("/v1/rank", "POST", "{not json", 400, "bad_json", "invalid JSON"),
            ("/v1/rank", "POST", "[1,2]", 400, "bad_request", "must be a JSON object"),
            ("/v1/rank", "POST", #"{"v":1,"id":1,"prompt":"p","candidates":"c"}"#, 400, "bad_request", "'candidates' must be a list"),
            ("/v1/rank", "POST", #"{"v":1,"id":1,"op":"score","items":[]}"#, 400, "bad_request", "the path names op 'rank'"),
            ("/v1/rank", "POST", #"{"v":1,"id":1,"prompt":"p","candidates":["a","b","c"]}"#, 400, "too_many_candidates", "the limit is 2"),
            ("/v1/score", "POST", #"{"v":2,"id":1,"items":[]}"#, 400, "unsupported_version", "version 2"),
            ("/get_reward", "POST", #"{"query":["Q: a","X: b"],"prompts":["Q:","Q:"]}"#, 400, "bad_request", "query[1] does not start with prompts[1]"),
            ("/get_reward", "POST", #"{"query":["Q: a"],"prompts":["Q:","Q:"]}"#, 400, "bad_request", "must pair up"),
            ("/get_reward", "POST", #"{"query":["Q: a"],"prompts":["Q:"],"labels":[7]}"#, 400, "bad_request", "labels[0] must be a user id string"),
            ("/reward", "POST", #"{"prompt":"p","response":3}"#, 400, "bad_request", "'response' must be a string"),
            ("/rerank", "POST", #"{"query":"q","texts":[]}"#, 400, "bad_request", "'texts' is empty"),
            ("/v1/rank", "GET", nil, 405, "bad_request", "takes POST"),
            ("/v1/info", "POST", "{}", 405, "bad_request", "takes GET"),
            ("/v2/rank", "POST", "{}", 404, "bad_request", "no endpoint at /v2/rank"),
        ]
        for (path, method, body, status, code, mentioning) in cases {
            let response = try call(running.http, path, method: method, body: body)
            XCTAssertEqual(response.status, status, "\(method) \(path) \(body ?? "")")
            XCTAssertEqual(response.code, code, "\(method) \(path) \(body ?? "")")
            XCTAssertTrue(response.message.contains(mentioning), "\(path): '\(response.message)' does not mention '\(mentioning)'")
        }
        XCTAssertEqual(try call(running.http, "/reward", body: #"{"prompt":"p","response":"r"}"#).status, 200, "still serving")
    }

    // MARK: - Limits

    /// A 100 MB body is refused 413 from its Content-Length, before it is read: memory stays
    /// bounded and the server goes on serving.
    func testOversizedBodyIsRefusedBeforeItIsRead() throws {
        let running = try serve()
        try ResidentMemory.resetPeak()
        let before = try ResidentMemory.peakMegabytes()
        let socket = try RawConnection(running.http)
        socket.send("POST /v1/score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
        socket.send(String(repeating: "x", count: 65_536))
        let answer = socket.readAll(timeout: 10)
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 413"), answer)
        XCTAssertTrue(answer.contains(#""code":"too_large""#) && answer.contains("the limit is 1048576"), answer)
        XCTAssertLessThan(try ResidentMemory.peakMegabytes() - before, 50, "the body was read into memory")
        XCTAssertEqual(try call(running.http, "/reward", body: #"{"prompt":"p","response":"r"}"#).status, 200, "still serving")
    }

    /// A client that sends half its headers and stops is disconnected after the idle timeout;
    /// others are served meanwhile.
    func testSlowClientIsDisconnectedAndOthersServed() throws {
        let running = try serve { $0.http?.connectionTimeout = 1 }
        let slow = try RawConnection(running.http)
        slow.send("POST /v1/rank HTTP/1.1\r\nHost: te")
        for _ in 0..<3 { XCTAssertEqual(try call(running.http, "/health/live", method: "GET").status, 200) }
        let started = Date()
        XCTAssertEqual(slow.readAll(timeout: 10), "", "the slow client got an answer instead of a closed connection")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "the idle timeout of 1 s did not close the connection")
        XCTAssertEqual(try call(running.http, "/health/live", method: "GET").status, 200)
    }

    // MARK: - Authentication and TLS

    func testBearerTokensAreRequiredAndReloadedOnSIGHUP() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("prm-http-tokens-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("tokens")
        try "first-token\n# a comment\nsecond-token\n".write(to: file, atomically: true, encoding: .utf8)
        let running = try serve { $0.http?.tokenFile = file }
        let info = { (token: String?) in try self.call(running.http, "/v1/info", method: "GET", token: token) }
        for token in [nil, "wrong", "first-toke", "first-token-"] {
            let refused = try info(token)
            XCTAssertEqual(refused.status, 401, "token \(token ?? "none")")
            XCTAssertTrue(refused.message.contains("bearer token"), refused.message)
        }
        XCTAssertEqual(try info("first-token").status, 200)
        XCTAssertEqual(try info("second-token").status, 200)
        XCTAssertEqual(try call(running.http, "/health/live", method: "GET").status, 200, "liveness is open")
        XCTAssertEqual(try call(running.http, "/health/ready", method: "GET").status, 401)
        try "third-token\n".write(to: file, atomically: true, encoding: .utf8)
        kill(getpid(), SIGHUP)
        let deadline = Date().addingTimeInterval(10)
        while try info("third-token").status != 200, Date() < deadline { usleep(20_000) }
        XCTAssertEqual(try info("third-token").status, 200, "the new token was not loaded on SIGHUP")
        XCTAssertEqual(try info("first-token").status, 401, "the old token still works after the reload")
    }

    func testTLSWithAMissingCertificateIsAClearStartupError() throws {
        var settings = ServerSettings()
        settings.bind = "tcp://127.0.0.1:0"
        settings.http = HTTPSettings(address: "127.0.0.1:0")
        settings.http?.tlsCertificate = URL(fileURLWithPath: "/nonexistent/server.pem")
        settings.http?.tlsKey = URL(fileURLWithPath: "/nonexistent/server.key")
        XCTAssertThrowsError(try BackgroundServer(try ScoringServer(scorer: try ServerTests.scorer(), settings: settings))) { error in
            XCTAssertTrue("\(error)".contains("--tls-cert /nonexistent/server.pem: cannot read the file"), "\(error)")
        }
    }

    // MARK: - Batching and drain

    /// 64 clients sending one sample each at once (64 connections, all requests in flight
    /// together) are scored in shared batches.
    func testConcurrentSingleSampleRequestsShareBatches() throws {
        let running = try serve { $0.maxWaitMs = 50 }
        let clients = 64
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = clients
        let session = URLSession(configuration: configuration)
        let statuses = Mutex<[Int]>([]), group = DispatchGroup()
        for n in 0..<clients {
            var request = URLRequest(url: try XCTUnwrap(URL(string: running.http + "/reward")), timeoutInterval: 30)
            request.httpMethod = "POST"
            request.httpBody = Data(#"{"prompt":"Human: hi\n\nAssistant:","response":"reply \#(n)","label":"ann"}"#.utf8)
            group.enter()
            session.dataTask(with: request) { _, response, _ in
                statuses.withLock { $0.append((response as? HTTPURLResponse)?.statusCode ?? -1) }
                group.leave()
            }.resume()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        session.finishTasksAndInvalidate()
        XCTAssertEqual(statuses.withLock { $0 }, Array(repeating: 200, count: clients))
        let batches = try XCTUnwrap(try call(running.http, "/v1/metrics", method: "GET").object["batches"] as? [String: Any])
        let count = try XCTUnwrap(batches["count"] as? Int), requests = try XCTUnwrap(batches["requests"] as? Int)
        XCTAssertEqual(requests, clients)
        XCTAssertLessThan(count, clients / 2, "64 single-sample requests ran in \(count) batches: HTTP requests are not batched together")
    }

    /// SIGTERM drains HTTP as ZeroMQ: a request in the queue gets its scores, one arriving during
    /// the drain is refused 503 shutting_down.
    func testDrainAnswersAcceptedRequestsAndRefusesNewOnes() throws {
        let running = try serve { $0.maxWaitMs = 3_000 }
        let accepted = Mutex<Int?>(nil)
        let done = DispatchSemaphore(value: 0), http = running.http
        DispatchQueue.global().async {
            let response = try? Self.request(http, "/reward", body: #"{"prompt":"p","response":"queued","label":"ann"}"#)
            accepted.withLock { $0 = response?.status }
            done.signal()
        }
        usleep(1_000_000)  // the request waits for its batch to fill (max wait 3 s)
        running.server.requestShutdown()
        usleep(100_000)
        let late = try call(running.http, "/reward", body: #"{"prompt":"p","response":"late"}"#)
        XCTAssertEqual(late.status, 503)
        XCTAssertEqual(late.code, "shutting_down")
        XCTAssertEqual(try call(running.http, "/health/ready", method: "GET").status, 503, "ready while draining")
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(accepted.withLock { $0 }, 200, "the request accepted before the drain was not answered with its scores")
        running.stop()
    }

    static func json(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]), as: UTF8.self)
    }
}
