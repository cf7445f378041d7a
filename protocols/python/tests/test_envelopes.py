"""REQ and DEALER peers, with and without the empty delimiter, broker-style identity frames, bad
frame layouts: the reply always mirrors the request's envelope, and ids keep their spelling."""

from __future__ import annotations

import json
import re

import pytest
import zmq

from harness import Schemas, Server, Wire, parse_reply

HEALTH = b'{"v":1,"id":"h","op":"health"}'
RANK = json.dumps({"v": 1, "id": "r", "op": "rank", "prompt": "Human: hi\n\nAssistant:", "candidates": ["Hello.", "Hi!"]}).encode()


def test_req_socket(server: Server, schemas: Schemas) -> None:
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(server.endpoint)
    try:
        for number in range(3):  # REQ's strict send/receive alternation: each reply must arrive
            socket.send(json.dumps({"v": 1, "id": number, "op": "rank", "prompt": "Human: hi\n\nAssistant:",
                                    "candidates": ["Hello.", f"Hi number {number}!"]}).encode())
            assert socket.poll(60_000, zmq.POLLIN), "no reply to a REQ peer"
            reply = parse_reply([socket.recv()], schemas, "rank")
            assert reply.ok and reply.body["id"] == number
    finally:
        socket.close(linger=0)


@pytest.mark.parametrize("envelope", [(), (b"",), (b"hop-1", b""), (b"hop-1", b"\x00\xffbinary-identity", b"")],
                         ids=["dealer-bare", "dealer-delimiter", "one-hop", "two-hops"])
@pytest.mark.parametrize("body", [HEALTH, RANK], ids=["health", "rank"])
def test_dealer_envelopes_are_mirrored(wire: Wire, envelope: tuple[bytes, ...], body: bytes) -> None:
    reply = wire.call(body, envelope=envelope)  # call() asserts the mirrored envelope
    assert reply.ok, reply.body
    assert reply.body["id"] in ("h", "r")


@pytest.mark.parametrize("frames, envelope", [
    ([b""], [b""]),                                   # a delimiter and no body
    ([b"", HEALTH, HEALTH], [b""]),                   # two bodies after the delimiter
    ([HEALTH, HEALTH], []),                           # two bodies, no delimiter
    ([b"", b"", HEALTH], [b""]),                      # an empty frame where the body should be
    ([b"hop", b"", HEALTH, b"extra"], [b"hop", b""]),  # a trailing extra frame behind identities
], ids=["no-body", "two-bodies", "two-bodies-bare", "empty-then-body", "extra-frame"])
def test_bad_frame_layouts_get_bad_request_with_the_same_envelope(wire: Wire, frames: list[bytes], envelope: list[bytes]) -> None:
    wire.send(frames)
    got = wire.receive()
    assert got[:-1] == envelope, f"reply envelope {got[:-1]} for request frames {frames}"
    reply = parse_reply(got, wire.schemas, None)
    assert reply.code == "bad_request", reply.body
    assert reply.body["id"] in (None, "h")  # the id may be unreadable when the layout is wrong
    assert wire.call(HEALTH).ok  # and the next request is served


def test_empty_body_is_bad_json(wire: Wire) -> None:
    wire.send([b"", b""])  # envelope [""], body "" (not a JSON value)
    got = wire.receive()
    assert got[:-1] == [b""]
    reply = parse_reply(got, wire.schemas, None)
    assert reply.code == "bad_json", reply.body
    assert reply.body["id"] is None


@pytest.mark.parametrize("spelling", [b"7", b"-0", b"1.50", b"2.5e3", b"1E+2", b"123456789012345678901234567890", b"1e400"])
def test_numeric_ids_keep_their_spelling(wire: Wire, spelling: bytes) -> None:
    reply = wire.call(b'{"v":1,"id":' + spelling + b',"op":"health"}')
    assert reply.ok, reply.body
    assert re.search(rb'"id"\s*:\s*' + re.escape(spelling) + rb'\s*[,}]', reply.raw), reply.raw[:200]


def test_string_ids_are_echoed_exactly(wire: Wire) -> None:
    for request_id in ["", "a b", "ünïcödé ✓", "quote \" backslash \\ newline \n", "x" * 1000]:
        reply = wire.call({"v": 1, "id": request_id, "op": "health"})
        assert reply.body["id"] == request_id


def test_many_peers_get_their_own_replies(server: Server, schemas: Schemas) -> None:
    # The ROUTER routes by peer identity: each of several sockets sees only its own reply.
    wires = [Wire(server.endpoint, schemas) for _ in range(6)]
    try:
        for number, peer in enumerate(wires):
            peer.send([b"", json.dumps({"v": 1, "id": f"peer-{number}", "op": "health"}).encode()])
        for number, peer in enumerate(wires):
            reply = parse_reply(peer.receive(), schemas, "health")
            assert reply.body["id"] == f"peer-{number}"
            assert peer.silent_for(0.05)
    finally:
        for peer in wires:
            peer.close()
