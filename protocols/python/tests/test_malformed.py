"""Every malformed request gets its stable error code (and the id when it can be read), and the
server then answers the next good request on the same socket."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pytest
import zmq

from harness import Schemas, Server, Wire, parse_reply

GOOD = {"v": 1, "id": 41, "op": "rank", "user_id": "worker-3", "prompt": "Human: hi\n\nAssistant:", "candidates": ["Hello.", "Hi there!"]}
GOOD_SCORE = {"v": 1, "id": 41, "op": "score", "items": [{"user_id": "worker-3", "prompt": "Human: hi\n\nAssistant:", "response": "Hello."}]}

ECHOED, NULL, EITHER = "echoed", "null", "either"


@dataclass
class Case:
    name: str
    body: bytes
    codes: tuple[str, ...]
    #: ECHOED: the id (41) must come back; NULL: it cannot be read, so null; EITHER: the body is
    #: not valid JSON or UTF-8, and a server may or may not have read the id before that.
    id_rule: str = ECHOED
    #: A word the message must contain (the field it names).
    names: str | None = None


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def changed(base: dict[str, Any] = GOOD, **members: Any) -> bytes:
    return encode({**base, **members})


def without(field: str, base: dict[str, Any] = GOOD) -> bytes:
    return encode({key: value for key, value in base.items() if key != field})


def with_item(**members: Any) -> bytes:
    item = {**GOOD_SCORE["items"][0], **members}
    return encode({**GOOD_SCORE, "items": [{k: v for k, v in item.items() if v is not DROP}]})


DROP = object()
GOOD_TEXT = encode(GOOD).decode()


def raw(text: str) -> bytes:
    return text.encode("utf-8")


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return raw(GOOD_TEXT[:-1] + ',"extra":' + open_ * depth + close * depth + "}")


GARBAGE = bytes(random.Random(7).randrange(256) for _ in range(4096))

CASES = [
    # Not JSON.
    Case("truncated", raw(GOOD_TEXT[:-1]), ("bad_json",), EITHER),
    Case("trailing-garbage", raw(GOOD_TEXT + " x"), ("bad_json",), EITHER),
    Case("two-documents", raw(GOOD_TEXT + GOOD_TEXT), ("bad_json",), EITHER),
    Case("single-quotes", b"{'v': 1, 'id': 41, 'op': 'health'}", ("bad_json",), NULL),
    Case("trailing-comma", b'{"v":1,"id":41,"op":"health",}', ("bad_json",), EITHER),
    Case("leading-zero", b'{"v":01,"id":41,"op":"health"}', ("bad_json",), EITHER),
    Case("unescaped-control-character", raw(GOOD_TEXT.replace("hi", "h\x01i")), ("bad_json",), EITHER),
    Case("bad-escape", raw(GOOD_TEXT.replace("hi", "h\\qi")), ("bad_json",), EITHER),
    Case("nan", raw(GOOD_TEXT[:-1] + ',"top_k":NaN}'), ("bad_json",), EITHER),
    Case("infinity", raw(GOOD_TEXT[:-1] + ',"deadline_ms":Infinity}'), ("bad_json",), EITHER),
    Case("minus-infinity", raw(GOOD_TEXT[:-1] + ',"top_k":-Infinity}'), ("bad_json",), EITHER),
    Case("duplicate-key", b'{"v":1,"id":41,"op":"health","op":"rank"}', ("bad_json",), EITHER),
    Case("duplicate-key-nested", raw(encode(GOOD_SCORE).decode().replace('"response":', '"prompt":"again","response":')), ("bad_json",), EITHER),
    Case("nesting-65", nested(64), ("bad_json",), EITHER),        # the request object is level 1
    Case("nesting-200", nested(200), ("bad_json",), EITHER),
    Case("nesting-200-objects", raw(GOOD_TEXT[:-1] + ',"extra":' + '{"a":' * 200 + "1" + "}" * 200 + "}"), ("bad_json",), EITHER),
    Case("nesting-100000", nested(100_000), ("bad_json",), EITHER),
    Case("unclosed-nesting-100000", b"[" * 100_000, ("bad_json",), NULL),
    Case("nul-bytes", b"\x00\x01\x02", ("bad_json",), NULL),
    # Not UTF-8.
    Case("invalid-byte", raw(GOOD_TEXT).replace(b"hi", b"h\xffi"), ("bad_utf8",), EITHER),
    Case("overlong-slash", raw(GOOD_TEXT).replace(b"hi", b"h\xc0\xafi"), ("bad_utf8",), EITHER),
    Case("encoded-surrogate", raw(GOOD_TEXT).replace(b"hi", b"h\xed\xa0\x80i"), ("bad_utf8",), EITHER),
    Case("cut-multibyte", raw(GOOD_TEXT).replace(b"hi", b"h\xe2\x82i"), ("bad_utf8",), EITHER),
    Case("binary-garbage", GARBAGE, ("bad_utf8",), NULL),
    # Not an object.
    Case("top-level-array", b"[1, 2, 3]", ("bad_request",), NULL),
    Case("top-level-string", b'"rank"', ("bad_request",), NULL),
    Case("top-level-number", b"41", ("bad_request",), NULL),
    Case("top-level-null", b"null", ("bad_request",), NULL),
    # Missing members.
    Case("missing-v", without("v"), ("bad_request", "unsupported_version"), ECHOED, "v"),
    Case("missing-id", without("id"), ("bad_request",), NULL, "id"),
    Case("missing-op", without("op"), ("bad_request",), ECHOED, "op"),
    Case("missing-prompt", without("prompt"), ("bad_request",), ECHOED, "prompt"),
    Case("missing-candidates", without("candidates"), ("bad_request",), ECHOED, "candidates"),
    Case("missing-items", without("items", GOOD_SCORE), ("bad_request",), ECHOED, "items"),
    Case("item-missing-prompt", with_item(prompt=DROP), ("bad_request",), ECHOED, "prompt"),
    Case("item-missing-response", with_item(response=DROP), ("bad_request",), ECHOED, "response"),
    # Wrong types.
    Case("v-string", changed(v="1"), ("bad_request", "unsupported_version"), ECHOED, "v"),
    Case("v-null", changed(v=None), ("bad_request", "unsupported_version"), ECHOED, "v"),
    Case("id-array", changed(id=[41]), ("bad_request",), NULL, "id"),
    Case("id-object", changed(id={"n": 41}), ("bad_request",), NULL, "id"),
    Case("id-bool", changed(id=True), ("bad_request",), NULL, "id"),
    Case("id-null", changed(id=None), ("bad_request",), NULL, "id"),
    Case("op-number", changed(op=5), ("bad_request", "unknown_op"), ECHOED, "op"),
    Case("op-null", changed(op=None), ("bad_request", "unknown_op"), ECHOED, "op"),
    Case("prompt-number", changed(prompt=5), ("bad_request",), ECHOED, "prompt"),
    Case("prompt-null", changed(prompt=None), ("bad_request",), ECHOED, "prompt"),
    Case("prompt-list", changed(prompt=["Human: hi"]), ("bad_request",), ECHOED, "prompt"),
    Case("candidates-string", changed(candidates="Hello."), ("bad_request",), ECHOED, "candidates"),
    Case("candidates-numbers", changed(candidates=[1, 2]), ("bad_request",), ECHOED, "candidates"),
    Case("candidates-null-member", changed(candidates=["Hello.", None]), ("bad_request",), ECHOED, "candidates"),
    Case("candidates-object", changed(candidates={"a": "Hello."}), ("bad_request",), ECHOED, "candidates"),
    Case("user-id-number", changed(user_id=3), ("bad_request",), ECHOED, "user_id"),
    Case("user-id-list", changed(user_id=["worker-3"]), ("bad_request",), ECHOED, "user_id"),
    Case("user-info-number", changed(user_info=7), ("bad_request",), ECHOED, "user_info"),
    Case("top-k-zero", changed(top_k=0), ("bad_request",), ECHOED, "top_k"),
    Case("top-k-negative", changed(top_k=-1), ("bad_request",), ECHOED, "top_k"),
    Case("top-k-fraction", changed(top_k=1.5), ("bad_request",), ECHOED, "top_k"),
    Case("top-k-string", changed(top_k="1"), ("bad_request",), ECHOED, "top_k"),
    Case("top-k-bool", changed(top_k=True), ("bad_request",), ECHOED, "top_k"),
    Case("top-k-1e400", raw(GOOD_TEXT[:-1] + ',"top_k":1e400}'), ("bad_request",), ECHOED, "top_k"),
    Case("deadline-zero", changed(deadline_ms=0), ("bad_request",), ECHOED, "deadline_ms"),
    Case("deadline-negative", changed(deadline_ms=-5), ("bad_request",), ECHOED, "deadline_ms"),
    Case("deadline-string", changed(deadline_ms="10"), ("bad_request",), ECHOED, "deadline_ms"),
    Case("items-string", changed(GOOD_SCORE, items="Hello."), ("bad_request",), ECHOED, "items"),
    Case("items-numbers", changed(GOOD_SCORE, items=[5]), ("bad_request",), ECHOED, "items"),
    Case("item-prompt-number", with_item(prompt=5), ("bad_request",), ECHOED, "prompt"),
    Case("item-response-null", with_item(response=None), ("bad_request",), ECHOED, "response"),
    Case("item-user-id-number", with_item(user_id=5), ("bad_request",), ECHOED, "user_id"),
    # Empty lists.
    Case("empty-candidates", changed(candidates=[]), ("bad_request",), ECHOED, "candidates"),
    Case("empty-items", changed(GOOD_SCORE, items=[]), ("bad_request",), ECHOED, "items"),
    # Unknown operations and versions.
    Case("unknown-op", changed(op="frobnicate"), ("unknown_op",), ECHOED),
    Case("op-case", changed(op="RANK"), ("unknown_op",), ECHOED),
    Case("version-2", changed(v=2), ("unsupported_version",), ECHOED),
    Case("version-0", changed(v=0), ("unsupported_version",), ECHOED),
]


def check(reply_body: dict[str, Any], case: Case) -> None:
    assert reply_body["ok"] is False, reply_body
    assert reply_body["error"]["code"] in case.codes, reply_body
    got = reply_body["id"]
    if case.id_rule == ECHOED:
        assert got == 41 and type(got) is int, reply_body
    elif case.id_rule == NULL:
        assert got is None, reply_body
    else:
        assert got in (None, 41), reply_body
    if case.names is not None:
        assert case.names in reply_body["error"]["message"], reply_body


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_request_then_good_request(wire: Wire, case: Case) -> None:
    check(wire.call(case.body).body, case)
    follow_up = wire.call(GOOD)
    assert follow_up.ok and follow_up.body["id"] == 41, follow_up.body


@pytest.mark.parametrize("body", [
    raw("\n\t " + GOOD_TEXT + " \r\n"),                             # whitespace around the document
    raw(GOOD_TEXT[:-1] + ',"client":"v9","extra":{"a":[1,2,{"b":null}]}}'),  # members not listed are ignored
    nested(10),                                                     # moderate nesting is fine
    nested(63),                                                     # 64 levels: the deepest allowed
    changed(user_id=None, user_info=None),                          # null means absent
    changed(deadline_ms=60_000.5),
], ids=["whitespace", "unknown-members", "nesting-10", "nesting-64", "nulls", "fractional-deadline"])
def test_lenient_where_the_protocol_allows(wire: Wire, body: bytes) -> None:
    reply = wire.call(body)
    assert reply.ok and reply.body["id"] == 41, reply.body


def test_too_many_candidates_and_items(wire: Wire) -> None:
    limit = wire.call({"v": 1, "id": 0, "op": "info"}).body["limits"]["max_candidates"]
    at_limit = wire.call(changed(candidates=[f"reply {n}" for n in range(limit)]))
    assert at_limit.ok, at_limit.body
    check(wire.call(changed(candidates=[f"reply {n}" for n in range(limit + 1)])).body,
          Case("", b"", ("too_many_candidates",), ECHOED, "candidates"))
    items = [{"prompt": "Human: hi\n\nAssistant:", "response": f"reply {n}"} for n in range(limit + 1)]
    check(wire.call(changed(GOOD_SCORE, items=items)).body, Case("", b"", ("too_many_candidates",), ECHOED, "items"))
    assert wire.call(GOOD).ok


def test_too_large_message(wire: Wire) -> None:
    limit = wire.call({"v": 1, "id": 0, "op": "info"}).body["limits"]["max_message_bytes"]
    body = changed(prompt="x" * limit)
    assert len(body) > limit
    check(wire.call(body).body, Case("", b"", ("too_large",), EITHER))
    assert wire.call(GOOD).ok


def test_far_too_large_message_drops_the_peer_but_not_the_server(server: Server, schemas: Schemas, wire: Wire) -> None:
    # Past four times the limit ZeroMQ itself refuses the message and disconnects the peer.
    limit = wire.call({"v": 1, "id": 0, "op": "info"}).body["limits"]["max_message_bytes"]
    with Wire(server.endpoint, schemas) as doomed:
        doomed.send([b"", changed(prompt="x" * (4 * limit + 1024))])
        assert doomed.silent_for(1.0)
    assert wire.call(GOOD).ok
    with Wire(server.endpoint, schemas) as fresh:
        assert fresh.call(GOOD).ok


def test_error_counts_by_code(wire: Wire) -> None:
    before = wire.call({"v": 1, "id": 0, "op": "metrics"}).body["errors"]
    for case in (CASES[0], CASES[0], next(c for c in CASES if c.name == "unknown-op")):
        wire.call(case.body)
    after = wire.call({"v": 1, "id": 0, "op": "metrics"}).body["errors"]
    assert after.get("bad_json", 0) - before.get("bad_json", 0) == 2
    assert after.get("unknown_op", 0) - before.get("unknown_op", 0) == 1


def test_rapid_fire_garbage_on_many_sockets(server: Server, schemas: Schemas) -> None:
    # A burst of every bad case from several sockets at once, then each socket's good request.
    context = zmq.Context.instance()
    peers = [Wire(server.endpoint, schemas, context=context) for _ in range(4)]
    try:
        for peer in peers:
            for case in CASES:
                peer.send([b"", case.body])
            peer.send([b"", changed(id="final")])
        for peer in peers:
            replies = [parse_reply(peer.receive(), schemas, "rank") for _ in range(len(CASES) + 1)]
            final = [reply for reply in replies if reply.body["id"] == "final"]
            assert len(final) == 1 and final[0].ok
            assert sum(1 for reply in replies if not reply.ok) == len(CASES)
    finally:
        for peer in peers:
            peer.close()
