"""Chat messages through a real ``prm serve``: the server writes them with the checkpoint's text
template (PROTOCOL.md, "Chat messages"), so a message-list rank scores as the rendered string;
bad messages are ``bad_request`` naming the field; the new shapes match the schemas."""

from __future__ import annotations

from typing import Any

import pytest

from harness import Schemas, Wire, assert_close
from prm_client import protocol

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
DIALOGUE = [SYSTEM, {"role": "user", "content": "Any tips for sleeping?"},
            {"role": "assistant", "content": "Keep a regular schedule."}, {"role": "user", "content": "What else?"}]
RENDERED = "Human: Any tips for sleeping?\n\nAssistant: Keep a regular schedule.\n\nHuman: What else?\n\nAssistant:"
REPLIES = ["A dark, cool room.", "Avoid screens for an hour before bed and keep caffeine to the morning."]


def rank(prompt: Any, candidates: list[Any], **extra: Any) -> dict[str, Any]:
    return {"v": 1, "id": "chat", "op": "rank", "user_id": "worker-3", "prompt": prompt, "candidates": candidates, **extra}


def test_messages_rank_as_the_rendered_string(wire: Wire) -> None:
    as_text = wire.call(rank(RENDERED, REPLIES))
    as_messages = wire.call(rank(DIALOGUE, [REPLIES[0], {"role": "assistant", "content": REPLIES[1]}]))
    assert as_text.ok and as_messages.ok, (as_text.body, as_messages.body)
    assert_close(as_messages.body["scores"], as_text.body["scores"], 1e-6, "messages vs rendered text")
    assert as_messages.body["order"] == as_text.body["order"]
    score = wire.call({"v": 1, "id": "s", "op": "score",
                       "items": [{"prompt": DIALOGUE, "response": {"role": "assistant", "content": REPLIES[0]}}]})
    assert score.ok, score.body
    generic = wire.call(rank(RENDERED, REPLIES[:1], user_id=None))
    assert_close(score.body["scores"], generic.body["scores"], 1e-6, "score item with messages")


def test_info_shows_the_template_and_metrics_count_prompts_off_it(wire: Wire) -> None:
    assert wire.call({"v": 1, "id": 1, "op": "info"}).body["model"]["template"] == "hh"
    before = wire.call({"v": 1, "id": 2, "op": "metrics"}).body["prompts"]
    assert before["template"] == "hh"
    assert wire.call(rank("Any tips for sleeping?", REPLIES)).ok
    after = wire.call({"v": 1, "id": 3, "op": "metrics"}).body["prompts"]
    assert after["off_template"] == before["off_template"] + 1


@pytest.mark.parametrize("prompt, candidates, fragment", [
    ([], REPLIES, "field 'prompt' is an empty list of messages"),
    ([{"role": "bot", "content": "hi"}], REPLIES, "field 'prompt[0].role' is 'bot', an unknown role"),
    ([{"role": "user"}], REPLIES, "missing field 'prompt[0].content'"),
    ([{"role": "user", "content": 5}], REPLIES, "field 'prompt[0].content' must be a string, got number"),
    ("Human: hi\n\nAssistant:", ["ok", {"role": "user", "content": "x"}], "a reply is an 'assistant' message"),
])
def test_bad_messages_are_bad_requests_naming_the_field(wire: Wire, prompt: Any, candidates: list[Any], fragment: str) -> None:
    reply = wire.call(rank(prompt, candidates))
    assert not reply.ok and reply.code == "bad_request", reply.body
    assert fragment in reply.message, reply.message
    assert wire.call(rank(RENDERED, REPLIES)).ok, "the server keeps serving"


def test_message_shapes_match_the_schemas(schemas: Schemas) -> None:
    schemas.check_request(protocol.rank_request("a", DIALOGUE, ["x", {"role": "assistant", "content": "y"}]))
    schemas.check_request(protocol.score_request("b", [protocol.score_item(DIALOGUE, {"role": "assistant", "content": "y"})]))
    validator = schemas.validator("request.schema.json")
    for bad in (rank([], REPLIES), rank([{"role": "bot", "content": "x"}], REPLIES), rank([{"role": "user"}], REPLIES),
                rank("p", [{"role": "user", "content": "x"}]), rank("p", [{"role": "assistant", "content": 3}])):
        assert not validator.is_valid(bad), bad
