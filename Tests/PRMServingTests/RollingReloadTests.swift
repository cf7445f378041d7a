import XCTest
import PRMCore
@testable import PRMServing

/// The proxy's rolling reload and gathered `users` without sockets: a paused worker gets no
/// requests, the roll takes workers one at a time in order and stops at a refusal naming the
/// worker, and a gather merges the workers' flagged users.
final class RollingReloadTests: XCTestCase {
    private func request(_ n: Int) -> ProxyRouter.Request {
        ProxyRouter.Request(route: [[UInt8(n)]], body: [], id: .number(JSONNumber(n)), op: .rank, receivedAt: 0, deadline: nil)
    }

    func testAPausedWorkerTakesNoRequests() {
        var router = ProxyRouter(resends: 1, expiry: 10)
        let (a, b): ([UInt8], [UInt8]) = ([1], [2])
        _ = router.ready(a, slots: 4, model: nil, now: 0)
        _ = router.ready(b, slots: 4, model: nil, now: 0)
        router.pause(a)
        for n in 0..<3 {
            _ = router.accept(request(n))
            let next = router.nextAssignment(now: 1)
            XCTAssertEqual(next?.worker, b)
            if let next { router.dispatched(next.token, to: next.worker, now: 1) }
        }
        XCTAssertEqual(router.routable.map(\.identity), [b])
        XCTAssertEqual(router.maxPaused, 1)
        XCTAssertEqual(router.minRoutableWhilePaused, 1)
        router.resume(a)
        _ = router.accept(request(9))
        XCTAssertEqual(router.nextAssignment(now: 1)?.worker, a, "back in routing, and the least loaded")
        XCTAssertNotEqual(router.reserveToken(), router.reserveToken())
    }

    func testTheRollGoesOneWorkerAtATimeAndStopsAtARefusal() throws {
        var roll = RollingReload(id: .string("r"), route: [[9]], path: "runs/new", workers: [[1], [2], [3]], now: 100)
        XCTAssertEqual(roll.next(token: 7, now: 100.5, inPool: { _ in true }), [1])
        let ok = try XCTUnwrap(JSONReader.parse(Array(#"{"ok":true,"model_fingerprint":"b","previous_fingerprint":"a","load_ms":5}"#.utf8)).object)
        XCTAssertTrue(roll.answered(ok, now: 101))
        // Worker 2 left the pool before its turn: skipped.
        XCTAssertEqual(roll.next(token: 8, now: 101, inPool: { $0 != [2] }), [3])
        let refused = try XCTUnwrap(JSONReader.parse(Array(#"{"ok":false,"error":{"code":"reload_failed","message":"bad"}}"#.utf8)).object)
        XCTAssertFalse(roll.answered(refused, now: 102))
        let error = roll.failure("worker 03 refused the reload: bad")
        XCTAssertEqual(error.code, .reloadFailed)
        XCTAssertEqual(error.message, "worker 03 refused the reload: bad; the roll stopped: 1 worker(s) reloaded before it (01), 1 still serve the model they served")
        XCTAssertEqual(roll.turns.map(\.outAt), [0.5, 1])
        XCTAssertEqual(roll.turns.map(\.backAt), [1, 2])
        let body = try XCTUnwrap(JSONReader.parse(roll.body).object)
        XCTAssertEqual(body["op"]?.string, "reload")
        XCTAssertEqual(body["path"]?.string, "runs/new")
    }

    func testAGatherMergesTheWorkersFlaggedUsers() throws {
        func reply(_ text: String) throws -> JSONObject { try XCTUnwrap(JSONReader.parse(Array(text.utf8)).object) }
        var gather = UsersGather(id: .string("u"), route: [[1]], user: "flat", waiting: [1: [1], 2: [2], 3: [3]], deadline: 10)
        XCTAssertTrue(gather.answered(1, reply: try reply("""
            {"ok":true,"tracked":2,"untracked_requests":0,"collapsed_total":1,"population":{"requests":30,"mean_score":1,"spread":2,"tied_fraction":0,"score_std":1},
             "flagged":[{"user_id":"flat","requests":10,"mean_score":0,"spread":0.1,"tied_fraction":1,"collapsed":true,"drifted":false}],
             "user":{"user_id":"flat","requests":10,"mean_score":0,"spread":0.1,"tied_fraction":1,"collapsed":true,"drifted":false}}
            """)))
        XCTAssertTrue(gather.answered(2, reply: try reply("""
            {"ok":true,"tracked":3,"untracked_requests":1,"collapsed_total":0,"population":{"requests":10,"mean_score":3,"spread":2,"tied_fraction":0,"score_std":1},
             "flagged":[{"user_id":"flat","requests":30,"mean_score":1,"spread":0.5,"tied_fraction":0,"collapsed":false,"drifted":true}],
             "user":{"user_id":"flat","requests":30,"mean_score":1,"spread":0.5,"tied_fraction":0,"collapsed":false,"drifted":true}}
            """)))
        XCTAssertFalse(gather.answered(99, reply: nil), "not this gather's token")
        gather.giveUp(on: [3])
        XCTAssertTrue(gather.complete)
        let merged = try XCTUnwrap(JSONReader.parse(gather.reply()).object)
        XCTAssertEqual(merged["tracked"]?.number?.integer, 5)
        XCTAssertEqual(merged["population"]?.object?["requests"]?.number?.integer, 40)
        XCTAssertEqual(merged["population"]?.object?["mean_score"]?.number?.value ?? 0, 1.5, accuracy: 1e-12)
        let flat = try XCTUnwrap(merged["flagged"]?.array?.first?.object)
        XCTAssertEqual(flat["requests"]?.number?.integer, 40)
        XCTAssertEqual(flat["spread"]?.number?.value ?? 0, 0.4, accuracy: 1e-12)
        XCTAssertEqual(flat["collapsed"]?.bool, true)
        XCTAssertEqual(flat["drifted"]?.bool, true)
        XCTAssertEqual(flat["workers"]?.number?.integer, 2)
        XCTAssertEqual(merged["workers"]?.object?["missing"]?.number?.integer, 1)
        XCTAssertEqual(merged["user"]?.object?["requests"]?.number?.integer, 40)
    }
}
