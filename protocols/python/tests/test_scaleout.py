"""``prm proxy`` with two workers under faults: a worker SIGKILLed or SIGSTOPped under load, a
proxy restarted, a worker drained, workers that keep dying with a request. Every request still gets exactly one correct reply (scores as
in-process ``prm score`` gives them), and ``health``/``metrics`` tell what happened to the pool.

The clients are plain: REQ sockets without retries and DEALER sockets with several requests in
flight, so whatever is not lost is thanks to the proxy's resends, not to client retries.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import zmq

from harness import Pool, Schemas, Wire, assert_close, parse_reply
from prm_client import Client, PrmError

#: Server and in-process scores may come from differently packed batches.
TOLERANCE = 1e-5
CLIENTS = 8
#: Requests a DEALER client keeps in flight.
WINDOW = 4
#: Seconds a client waits for one reply before it reports the request lost.
LOST_AFTER = 30.0
#: Slack on top of the heartbeat window for noticing a dead worker: the proxy checks twice per
#: heartbeat interval and the test polls health, on a shared two-core machine.
NOTICE_SLACK = 1.0

Reference = tuple[dict[str, Any], dict[str, Any]]


@dataclass
class Expected:
    """What the reply to one request must say."""

    op: str
    scores: list[float]
    known_user: Any
    order: list[int] | None


def plan(references: list[Reference], total: int) -> list[tuple[dict[str, Any], Expected]]:
    """``total`` requests over the reference set: three ranks, then a score op whose two items come
    from two different reference requests (different prompts and users)."""
    requests = []
    count = len(references)
    for number in range(total):
        if number % 4 == 3:
            (first, first_ref), (second, second_ref) = references[(7 * number) % count], references[(13 * number + 1) % count]
            items = [{"user_id": first["user_id"], "prompt": first["prompt"], "response": first["candidates"][0]},
                     {"user_id": second["user_id"], "prompt": second["prompt"], "response": second["candidates"][1]}]
            body = {"v": 1, "id": f"q{number}", "op": "score", "items": items}
            expected = Expected("score", [first_ref["scores"][0], second_ref["scores"][1]],
                                [first_ref["known_user"], second_ref["known_user"]], None)
        else:
            request, reference = references[number % count]
            body = {"v": 1, "id": f"q{number}", "op": "rank", **request}
            expected = Expected("rank", reference["scores"], reference["known_user"], reference["order"])
        requests.append((body, expected))
    return requests


@dataclass
class Peer:
    kind: int
    bodies: list[dict[str, Any]]
    frames: list[list[bytes]] = field(default_factory=list)
    failure: str | None = None


class Traffic:
    """CLIENTS threads sending ``requests`` through ``endpoint``: half REQ sockets (one request at
    a time, no retries), half DEALER sockets (WINDOW in flight). DEALER sockets stay open after
    their last reply until ``finish`` and record anything more that arrives (a duplicate)."""

    def __init__(self, endpoint: str, requests: list[tuple[dict[str, Any], Expected]]) -> None:
        self.endpoint = endpoint
        self.expected = {body["id"]: expected for body, expected in requests}
        self.peers = [Peer(zmq.REQ if number % 2 == 0 else zmq.DEALER, [body for body, _ in requests[number::CLIENTS]])
                      for number in range(CLIENTS)]
        self.lock = threading.Lock()
        self.answered = 0
        self.closing = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(peer,), daemon=True) for peer in self.peers]

    def start(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def count(self) -> int:
        with self.lock:
            return self.answered

    def wait_answered(self, count: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < count:
            assert time.monotonic() < deadline, f"only {self.count()} of {count} replies within {timeout} s"
            assert not any(peer.failure for peer in self.peers), [peer.failure for peer in self.peers]
            time.sleep(0.005)

    def received(self, peer: Peer, frames: list[bytes]) -> None:
        peer.frames.append(frames)
        with self.lock:
            self.answered += 1

    def run(self, peer: Peer) -> None:
        socket: zmq.Socket[bytes] = zmq.Context.instance().socket(peer.kind)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.endpoint)
        try:
            if peer.kind == zmq.REQ:
                for body in peer.bodies:
                    socket.send(json.dumps(body).encode())
                    if not socket.poll(int(LOST_AFTER * 1000), zmq.POLLIN):
                        peer.failure = f"REQ: no reply to {body['id']} within {LOST_AFTER} s"
                        return
                    self.received(peer, socket.recv_multipart())
                return
            unsent = list(peer.bodies)
            outstanding = 0
            while unsent or outstanding:
                while unsent and outstanding < WINDOW:
                    socket.send_multipart([b"", json.dumps(unsent.pop(0)).encode()])
                    outstanding += 1
                if not socket.poll(int(LOST_AFTER * 1000), zmq.POLLIN):
                    peer.failure = f"DEALER: {outstanding} request(s) unanswered for {LOST_AFTER} s"
                    return
                self.received(peer, socket.recv_multipart())
                outstanding -= 1
            while not self.closing.is_set():  # a second reply to anything would land here
                if socket.poll(50, zmq.POLLIN):
                    self.received(peer, socket.recv_multipart())
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            peer.failure = repr(error)
        finally:
            socket.close(linger=0)

    def finish(self, timeout: float = 120.0) -> None:
        """Waits for every client to be done, then closes the DEALER sockets."""
        deadline = time.monotonic() + timeout
        while any(thread.is_alive() and (peer.kind == zmq.REQ or len(peer.frames) < len(peer.bodies))
                  for thread, peer in zip(self.threads, self.peers)):
            assert time.monotonic() < deadline, f"clients still waiting after {timeout} s: {self.count()} replies"
            assert not any(peer.failure for peer in self.peers), [peer.failure for peer in self.peers]
            time.sleep(0.02)
        self.closing.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def check(self, schemas: Schemas) -> None:
        """Exactly one ok reply per request, with the reference scores."""
        failures = [f"client {number}: {peer.failure}" for number, peer in enumerate(self.peers) if peer.failure]
        assert not failures, failures
        seen: dict[str, int] = {}
        for peer in self.peers:
            for frames in peer.frames:
                expected_frames = 1 if peer.kind == zmq.REQ else 2
                assert len(frames) == expected_frames and (peer.kind == zmq.REQ or frames[0] == b""), frames
                request_id = json.loads(frames[-1])["id"]
                expected = self.expected[request_id]
                reply = parse_reply(frames, schemas, expected.op)
                assert reply.ok, reply.body
                seen[request_id] = seen.get(request_id, 0) + 1
                assert_close(reply.body["scores"], expected.scores, TOLERANCE, f"{request_id} scores")
                assert reply.body["known_user"] == expected.known_user, (request_id, reply.body)
                if expected.order is not None:
                    assert reply.body["order"] == expected.order, (request_id, reply.body)
        duplicates = {request_id: n for request_id, n in seen.items() if n > 1}
        assert not duplicates, f"answered more than once: {duplicates}"
        missing = set(self.expected) - set(seen)
        assert not missing, f"{len(missing)} request(s) never answered: {sorted(missing)[:10]}"


def both_busy(pool: Pool, traffic: Traffic, after: int) -> None:
    """Waits until ``after`` replies have arrived and both workers hold requests, so that the
    fault that follows hits a worker with work in hand."""
    traffic.wait_answered(after)
    pool.wait_for(lambda state: state["busy"] == 2, "both workers busy", timeout=30)


def time_until(pool: Pool, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    state = pool.wait_for(condition, what, timeout=timeout)
    return time.monotonic() - started, state


def test_sigkill_a_worker_under_load(start_pool: Callable[..., Pool], schemas: Schemas, references: list[Reference]) -> None:
    pool = start_pool(2)
    traffic = Traffic(pool.endpoint, plan(references, 1000)).start()
    both_busy(pool, traffic, after=40)
    victim = pool.workers[0]
    victim.signal(signal.SIGKILL)
    # Gone from the pool within the heartbeat window (a killed process's connection also drops
    # at once, which the proxy notices on its next heartbeat to it).
    noticed, state = time_until(pool, lambda state: state["workers"] == 1, "the killed worker dropped", timeout=30)
    assert noticed <= pool.expiry + NOTICE_SLACK, f"the dead worker stayed in the pool {noticed:.2f} s"
    assert state["lost"] == 1, state
    traffic.finish()
    traffic.check(schemas)
    assert victim.wait(5) == -signal.SIGKILL
    health = pool.call("health")
    metrics = pool.call("metrics")
    assert health["healthy"] is True and health["status"] == "serving", health
    assert health["pool"]["workers"] == 1 and health["pool"]["seen"] == 2, health
    pool_metrics = metrics["pool"]
    assert pool_metrics["lost"] == 1 and pool_metrics["workers"] == 1, pool_metrics
    # The killed worker held requests (it was busy): each went to the other worker once.
    assert pool_metrics["resent"] >= 1, pool_metrics
    assert metrics["errors"]["internal"] == 0, metrics["errors"]
    assert metrics["requests"]["rank"] + metrics["requests"]["score"] == 1000, metrics["requests"]


def test_sigstop_a_worker_then_sigcont(start_pool: Callable[..., Pool], schemas: Schemas, references: list[Reference]) -> None:
    pool = start_pool(2)
    traffic = Traffic(pool.endpoint, plan(references, 600)).start()
    both_busy(pool, traffic, after=40)
    frozen = pool.workers[0]
    frozen.signal(signal.SIGSTOP)
    try:
        noticed, state = time_until(pool, lambda state: state["workers"] == 1, "the stopped worker dropped", timeout=30)
        assert noticed <= pool.expiry + NOTICE_SLACK, f"the silent worker stayed in the pool {noticed:.2f} s"
        # Nothing waits for the stopped worker: every request is answered while it is still stopped.
        traffic.wait_answered(600)
        stopped = pool.call("metrics")["pool"]
        assert stopped["lost"] == 1 and stopped["resent"] >= 1 and stopped["late_replies"] == 0, stopped
    finally:
        frozen.signal(signal.SIGCONT)
    # It rejoins: it has heard nothing for longer than the heartbeat window, so it reconnects
    # (a new identity, READY), or the proxy answers its first heartbeat with RECONNECT. The
    # replies it computes for requests answered elsewhere are dropped at the proxy (late_replies)
    # or, when its old socket is already closed, at the worker: which one is a race, but none may
    # reach a client a second time (Traffic.check).
    rejoined, state = time_until(pool, lambda state: state["workers"] == 2, "the resumed worker back", timeout=30)
    time.sleep(2 * pool.expiry)  # room for any second delivery to reach the DEALER clients
    traffic.finish()
    traffic.check(schemas)
    assert state["seen"] >= 2 and state["lost"] == 1, state
    metrics = pool.call("metrics")
    assert metrics["errors"]["internal"] == 0, metrics["errors"]
    # Both workers serve again.
    more = Traffic(pool.endpoint, plan(references, 80)).start()
    more.finish()
    more.check(schemas)


def test_proxy_restart_workers_and_clients_come_back(start_pool: Callable[..., Pool], references: list[Reference]) -> None:
    pool = start_pool(2)
    stop = threading.Event()
    restarted = threading.Event()
    results: list[list[tuple[int, Any, bool]]] = [[] for _ in range(4)]
    clients = [Client(pool.endpoint, timeout=1.0, retries=30) for _ in range(4)]
    failures: list[str] = []
    transient: list[str] = []

    def run(number: int) -> None:
        client = clients[number]
        index = number
        try:
            while not stop.is_set():
                request, _ = references[index % len(references)]
                try:
                    result = client.rank(request["prompt"], request["candidates"], user_id=request["user_id"])
                except PrmError as error:
                    # A request that reaches the draining proxy is refused (shutting_down): an
                    # application retries such transient refusals; timeouts are the client's job.
                    if not error.transient:
                        raise
                    transient.append(error.code)
                    continue
                results[number].append((index, result.scores, restarted.is_set()))
                index += 4
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(f"client {number}: {error!r}")

    threads = [threading.Thread(target=run, args=(number,), daemon=True) for number in range(4)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while min(len(r) for r in results) < 5:
            assert time.monotonic() < deadline and not failures, failures
            time.sleep(0.01)
        old = pool.proxy
        old.signal(signal.SIGTERM)
        assert old.wait(30) == 0, old.log()
        time.sleep(1.5)  # the clients' requests time out against nothing
        pool.restart_proxy()
        restarted.set()
        back, state = time_until(pool, lambda state: state["workers"] == 2, "both workers back", timeout=30)
        # A worker notices the silence after the heartbeat window and reconnects after 1 s of
        # back-off at most (or its socket reconnects by itself and the new proxy asks for READY).
        assert back <= pool.expiry + 1.0 + 3.0, f"workers took {back:.1f} s to come back"
        assert state["seen"] == 2, state
        deadline = time.monotonic() + 60
        while min(sum(1 for *_, after in r if after) for r in results) < 5:
            assert time.monotonic() < deadline and not failures, failures
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for client in clients:
            client.close()
    assert not failures, failures
    assert set(transient) <= {"shutting_down"}, transient
    assert sum(client.reconnects for client in clients) >= 1, "no client had to retry: the restart was not exercised"
    for number, answered in enumerate(results):
        for index, scores, _ in answered:
            assert_close(scores, references[index % len(references)][1]["scores"], TOLERANCE, f"client {number} request {index}")


def test_a_draining_worker_finishes_its_work_and_gets_no_more(start_pool: Callable[..., Pool], schemas: Schemas,
                                                             references: list[Reference]) -> None:
    pool = start_pool(2)
    traffic = Traffic(pool.endpoint, plan(references, 600)).start()
    both_busy(pool, traffic, after=40)
    leaving = pool.workers[0]
    leaving.signal(signal.SIGTERM)
    assert leaving.wait(30) == 0, leaving.log()
    traffic.finish()
    traffic.check(schemas)
    state = pool.call("metrics")
    # It left by saying so (DISCONNECT), not by dying: nothing was lost or resent.
    assert state["pool"]["workers"] == 1 and state["pool"]["draining"] == 0, state["pool"]
    assert state["pool"]["lost"] == 0 and state["pool"]["resent"] == 0, state["pool"]
    assert sum(state["errors"].values()) == 0, state["errors"]


def test_a_draining_proxy_without_workers_refuses_what_waits_and_exits(start_pool: Callable[..., Pool], schemas: Schemas) -> None:
    # Found when a test run was killed: its workers left, and the SIGTERMed proxy waited for ever
    # for a worker to answer the requests still queued.
    pool = start_pool(0)
    request = {"v": 1, "id": "waits", "op": "rank", "prompt": "Human: hi\n\nAssistant:", "candidates": ["Hello."]}
    with Wire(pool.endpoint, schemas) as wire:
        wire.send([b"", json.dumps(request).encode()])
        pool.wait_for(lambda state: state["waiting"] == 1, "the request waiting for a worker")
        pool.proxy.signal(signal.SIGTERM)
        reply = parse_reply(wire.receive(10), schemas, "rank")
    assert reply.code == "shutting_down" and reply.body["id"] == "waits", reply.body
    assert pool.proxy.wait(10) == 0, pool.proxy.log()


class FakeWorker:
    """A PRMW1 worker played by the test: READY with one slot, HEARTBEAT back for every heartbeat,
    and no replies. Closing it without DISCONNECT is a worker dying."""

    def __init__(self, back: str) -> None:
        self.socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(back)
        self.socket.send_multipart([b"PRMW1", b"READY", json.dumps({"slots": 1, "model": None}).encode()])

    def __enter__(self) -> FakeWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.socket.close(linger=0)

    def requests(self, seconds: float, until_one: bool = False) -> list[dict[str, Any]]:
        """The request bodies the proxy sends within ``seconds`` (or until the first)."""
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not (until_one and received):
            if not self.socket.poll(int(left * 1000) + 1, zmq.POLLIN):
                continue
            frames = self.socket.recv_multipart()
            assert frames[0] == b"PRMW1", frames
            if frames[1] == b"REQUEST":
                received.append(json.loads(frames[3]))
            elif frames[1] == b"HEARTBEAT":
                self.socket.send_multipart([b"PRMW1", b"HEARTBEAT"])
        return received


def test_a_request_whose_workers_keep_dying_is_resent_once_then_answered_internal(start_pool: Callable[..., Pool],
                                                                                  schemas: Schemas) -> None:
    # A mutant the tests above let through: resending twice instead of once (--resends 1).
    pool = start_pool(0)
    request = {"v": 1, "id": "doomed", "op": "rank", "prompt": "Human: hi\n\nAssistant:", "candidates": ["Hello."]}
    with Wire(pool.endpoint, schemas) as client:
        client.send([b"", json.dumps(request).encode()])
        pool.wait_for(lambda state: state["waiting"] == 1, "the request waiting for a worker")
        for death in (1, 2):  # sent once, resent once: each time its worker dies holding it
            with FakeWorker(pool.proxy.back) as worker:
                assert [body["id"] for body in worker.requests(10, until_one=True)] == ["doomed"], f"not sent a {death}. time"
            pool.wait_for(lambda state: state["lost"] == death and state["workers"] == 0, f"dead worker {death} dropped")
        with FakeWorker(pool.proxy.back) as survivor:
            pool.wait_for(lambda state: state["workers"] == 1, "a third worker in the pool")
            sent_again = survivor.requests(2 * pool.expiry)
            assert sent_again == [], f"sent a third time: {sent_again}"
            # Read while the survivor has just answered heartbeats: a worker that stops answering
            # (or closes) is counted lost after one expiry, which a loaded machine can reach
            # before a later call.
            metrics = pool.call("metrics")
            reply = parse_reply(client.receive(5), schemas, "rank")
    assert reply.code == "internal" and reply.body["id"] == "doomed", reply.body
    assert "2 workers" in reply.message, reply.message
    assert metrics["pool"]["resent"] == 1 and metrics["pool"]["lost"] == 2, metrics["pool"]
    assert metrics["errors"]["internal"] == 1, metrics["errors"]
