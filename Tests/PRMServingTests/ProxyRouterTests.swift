import XCTest
import PRMCore
@testable import PRMServing

/// The proxy's routing rules without sockets (ProxyRouter): which worker gets a request, how many
/// times a request held by dying workers is sent, and what is taken out to be answered when.
final class ProxyRouterTests: XCTestCase {
    let a: [UInt8] = [0xa], b: [UInt8] = [0xb], c: [UInt8] = [0xc]

    func request(_ name: String, at now: Double = 0, deadlineMs: Double? = nil) -> ProxyRouter.Request {
        ProxyRouter.Request(route: [Array(name.utf8), []], body: Array("{}".utf8), id: .string(name), op: .rank, receivedAt: now,
                            deadline: deadlineMs.map { now + $0 / 1000 })
    }

    /// Sends out what `nextAssignment` chooses until it chooses nothing; the workers chosen, in order.
    func dispatchAll(_ router: inout ProxyRouter, now: Double = 0) -> [[UInt8]] {
        var chosen: [[UInt8]] = []
        while let next = router.nextAssignment(now: now) {
            router.dispatched(next.token, to: next.worker, now: now)
            chosen.append(next.worker)
        }
        return chosen
    }

    func testRequestsGoToTheLeastLoadedWorkerWithAFreeSlot() {
        var router = ProxyRouter(resends: 1, expiry: 3)
        _ = router.ready(a, slots: 2, model: nil, now: 0)
        _ = router.ready(b, slots: 1, model: nil, now: 0)
        for n in 0..<4 { _ = router.accept(request("r\(n)")) }
        let chosen = dispatchAll(&router)
        XCTAssertEqual(chosen.count, 3, "three slots in all: the fourth request waits")
        XCTAssertNotEqual(chosen[0], chosen[1], "the second request goes to the worker holding none")
        XCTAssertEqual(chosen[2], a, "only a has a slot left")
        XCTAssertEqual(router.waiting.count, 1)
        XCTAssertEqual(router.workers[a]?.inFlight.count, 2)
        XCTAssertEqual(router.workers[b]?.inFlight.count, 1)

        let answered = router.answered(router.workers[b]!.inFlight.first!, by: b)
        XCTAssertNotNil(answered)
        XCTAssertEqual(dispatchAll(&router), [b], "a freed slot takes the waiting request")
        XCTAssertEqual(router.waiting, [])
    }

    func testSilentAndDrainingWorkersGetNothing() {
        var router = ProxyRouter(resends: 1, expiry: 3)
        _ = router.ready(a, slots: 8, model: nil, now: 0)
        _ = router.ready(b, slots: 8, model: nil, now: 3.5)
        router.startDraining(b)
        XCTAssertNil(router.workers[b], "a draining worker holding nothing leaves at once")
        _ = router.accept(request("r"))
        XCTAssertNil(router.nextAssignment(now: 3.5), "a, silent for 3.5 s, is past the 3 s expiry")
        router.heard(from: a, now: 3.5)
        XCTAssertEqual(dispatchAll(&router, now: 3.5), [a])
        XCTAssertEqual(router.silent(now: 7), [a])
    }

    /// A request whose every worker dies holding it is sent 1 + `resends` times, then taken out to
    /// be answered `internal`; the count is exact (a mutant resending once more must fail here).
    func testARequestHeldByDyingWorkersIsSentOncePlusResendsTimes() {
        for resends in 0...3 {
            var router = ProxyRouter(resends: resends, expiry: 3)
            let token = router.accept(request("doomed"))
            var sent = 0
            var spent: [ProxyRouter.Request] = []
            for worker in 0..<10 where spent.isEmpty {
                let identity: [UInt8] = [UInt8(worker)]
                _ = router.ready(identity, slots: 1, model: nil, now: 0)
                guard let next = router.nextAssignment(now: 0) else { break }
                XCTAssertEqual(next.token, token)
                router.dispatched(next.token, to: identity, now: 0)
                sent += 1
                guard let dropped = router.drop(identity) else { return XCTFail("worker \(worker) was not in the pool") }
                XCTAssertEqual(dropped.resent + dropped.spent.count, 1)
                spent = dropped.spent
            }
            XCTAssertEqual(sent, resends + 1, "--resends \(resends)")
            XCTAssertEqual(spent.map(\.attempts), [resends + 1])
            XCTAssertEqual(router.resent, resends)
            XCTAssertTrue(router.pending.isEmpty && router.waiting.isEmpty, "the spent request is no longer routed")
            _ = router.ready([0xff], slots: 1, model: nil, now: 0)
            XCTAssertNil(router.nextAssignment(now: 0), "nothing is sent again")
        }
    }

    /// First reply wins: a worker taken for dead may still answer; the request is not sent again
    /// and the reply of the worker it was resent to counts as late.
    func testAReplyFromAWorkerTakenForDeadIsTheOneThatCounts() {
        var router = ProxyRouter(resends: 1, expiry: 3)
        _ = router.ready(a, slots: 1, model: nil, now: 0)
        let token = router.accept(request("r"))
        XCTAssertEqual(dispatchAll(&router), [a])
        XCTAssertEqual(router.drop(a)?.resent, 1)
        XCTAssertEqual(router.waiting, [token])
        XCTAssertEqual(router.answered(token, by: a)?.id, .string("r"), "the dead worker's reply answers it")
        _ = router.ready(b, slots: 1, model: nil, now: 0)
        XCTAssertNil(router.nextAssignment(now: 0), "answered: not sent again")
        XCTAssertEqual(router.waiting, [])
        XCTAssertNil(router.answered(token, by: b))
        XCTAssertEqual(router.lateReplies, 1)
    }

    func testWaitingRequestsPastTheirDeadlineAreTakenOut() {
        var router = ProxyRouter(resends: 1, expiry: 3)
        _ = router.accept(request("soon", at: 0, deadlineMs: 100))
        _ = router.accept(request("later", at: 0, deadlineMs: 1_000))
        _ = router.accept(request("never", at: 0))
        XCTAssertEqual(router.expireWaiting(now: 0.05).map(\.id), [])
        XCTAssertEqual(router.expireWaiting(now: 0.5).map(\.id), [.string("soon")])
        XCTAssertEqual(router.pending.count, 2)
        XCTAssertEqual(router.abandonWaiting().map(\.id), [.string("later"), .string("never")])
        XCTAssertTrue(router.pending.isEmpty)
    }

    /// The drain timeout: everything unanswered, waiting or at a worker, in the order accepted.
    func testAbandonAllTakesOutWaitingAndInFlightRequests() {
        var router = ProxyRouter(resends: 1, expiry: 3)
        _ = router.ready(a, slots: 1, model: nil, now: 0)
        let tokens = ["first", "second", "third"].map { router.accept(request($0)) }
        XCTAssertEqual(dispatchAll(&router), [a])
        XCTAssertEqual(router.abandonAll().map(\.id), [.string("first"), .string("second"), .string("third")])
        XCTAssertTrue(router.pending.isEmpty && router.waiting.isEmpty)
        XCTAssertEqual(router.workers[a]?.inFlight, [])
        XCTAssertNil(router.answered(tokens[0], by: a), "the worker's reply comes too late")
    }

    func testADrainingWorkerLeavesWithItsLastReply() {
        var router = ProxyRouter(resends: 1, expiry: 3)
        _ = router.ready(a, slots: 2, model: nil, now: 0)
        _ = router.ready(c, slots: 2, model: nil, now: 0)
        let tokens = [router.accept(request("x")), router.accept(request("y"))]
        _ = dispatchAll(&router)
        guard let holder = router.workers.values.first(where: { !$0.inFlight.isEmpty })?.identity else { return XCTFail("nothing in flight") }
        router.startDraining(holder)
        _ = router.accept(request("z"))
        XCTAssertTrue(dispatchAll(&router).allSatisfy { $0 != holder }, "no new work for a draining worker")
        for token in tokens where router.workers[holder]?.inFlight.contains(token) == true {
            XCTAssertNotNil(router.answered(token, by: holder))
        }
        XCTAssertNil(router.workers[holder], "gone once it holds nothing")
        XCTAssertEqual(router.workersLost, 0, "leaving is not dying")
    }
}
