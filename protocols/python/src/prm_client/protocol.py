"""The v1 wire protocol's constants and request bodies (protocols/PROTOCOL.md).

Everything the client puts on the wire is built here, so the request shapes live in one place
and the tests can check them against the JSON Schemas in ``protocols/v1``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import Enum
from typing import Any, Union

from .messages import PromptInput, ReplyInput

#: The protocol major version this client speaks (the ``v`` member of every message).
PROTOCOL_VERSION = 1

#: ``max_message_bytes`` of a server whose ``info`` gives none (PROTOCOL.md, "Limits").
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

#: A request id: echoed unchanged by the server.
RequestId = Union[str, int, float]


class ErrorCode(str, Enum):
    """The server's stable error codes (the ``error.code`` member of an error reply)."""

    BAD_JSON = "bad_json"
    BAD_UTF8 = "bad_utf8"
    BAD_REQUEST = "bad_request"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_OP = "unknown_op"
    TOO_MANY_CANDIDATES = "too_many_candidates"
    TOO_MANY_TOKENS = "too_many_tokens"
    TOO_LARGE = "too_large"
    OVERLOADED = "overloaded"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    SHUTTING_DOWN = "shutting_down"
    NOT_ADAPTABLE = "not_adaptable"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_USERS = "too_many_users"
    RELOAD_FAILED = "reload_failed"
    INTERNAL = "internal"


#: Codes that say nothing was wrong with the request itself: sending it again later (or to
#: another server) may succeed.
TRANSIENT_CODES = frozenset({ErrorCode.OVERLOADED, ErrorCode.DEADLINE_EXCEEDED, ErrorCode.SHUTTING_DOWN})


def _base(request_id: RequestId, op: str, deadline_ms: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": request_id, "op": op}
    if deadline_ms is not None:
        body["deadline_ms"] = deadline_ms
    return body


def _texts(name: str, values: Sequence[ReplyInput]) -> list[ReplyInput]:
    # A bare string is a Sequence[str] too; sending its characters as candidates is never meant.
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings or messages, got a single {type(values).__name__}")
    return list(values)


def rank_request(
    request_id: RequestId,
    prompt: PromptInput,
    candidates: Sequence[ReplyInput],
    user_id: str | None = None,
    user_info: str | None = None,
    top_k: int | None = None,
    deadline_ms: float | None = None,
    uncertainty: bool = False,
) -> dict[str, Any]:
    """The body of a ``rank`` request; optional members that are ``None`` (or false) are left out."""
    body = _base(request_id, "rank", deadline_ms)
    if user_id is not None:
        body["user_id"] = user_id
    if user_info is not None:
        body["user_info"] = user_info
    body["prompt"] = prompt
    body["candidates"] = _texts("candidates", candidates)
    if top_k is not None:
        body["top_k"] = top_k
    if uncertainty:
        body["uncertainty"] = True
    return body


def suggest_request(request_id: RequestId, prompt: PromptInput, candidates: Sequence[ReplyInput], k: int,
                    user_id: str | None = None, deadline_ms: float | None = None) -> dict[str, Any]:
    """The body of a ``suggest`` request: the ``k`` pairs of ``candidates`` to ask ``user_id`` about."""
    body = _base(request_id, "suggest", deadline_ms)
    if user_id is not None:
        body["user_id"] = user_id
    body["prompt"] = prompt
    body["candidates"] = _texts("candidates", candidates)
    body["k"] = k
    return body


def score_item(prompt: PromptInput, response: ReplyInput, user_id: str | None = None, user_info: str | None = None) -> dict[str, Any]:
    """One member of a ``score`` request's ``items``."""
    item: dict[str, Any] = {}
    if user_id is not None:
        item["user_id"] = user_id
    if user_info is not None:
        item["user_info"] = user_info
    item["prompt"] = prompt
    item["response"] = response
    return item


def score_request(request_id: RequestId, items: Sequence[dict[str, Any]], deadline_ms: float | None = None) -> dict[str, Any]:
    """The body of a ``score`` request over items made by :func:`score_item`."""
    body = _base(request_id, "score", deadline_ms)
    body["items"] = list(items)
    return body


def comparison(prompt: PromptInput, chosen: ReplyInput, rejected: ReplyInput) -> dict[str, Any]:
    """One member of an ``adapt`` request's ``comparisons``: the user preferred ``chosen``."""
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def adapt_request(request_id: RequestId, user_id: str, comparisons: Sequence[dict[str, Any]],
                  deadline_ms: float | None = None) -> dict[str, Any]:
    """The body of an ``adapt`` request over comparisons made by :func:`comparison`."""
    body = _base(request_id, "adapt", deadline_ms)
    body["user_id"] = user_id
    body["comparisons"] = list(comparisons)
    return body


def reload_request(request_id: RequestId, path: str | None = None) -> dict[str, Any]:
    """The body of a ``reload`` request (``path`` ``None``: the folder of the model served)."""
    body = _base(request_id, "reload")
    if path is not None:
        body["path"] = path
    return body


def users_request(request_id: RequestId, user_id: str | None = None) -> dict[str, Any]:
    """The body of a ``users`` request (with ``user_id``: that user's statistics too)."""
    body = _base(request_id, "users")
    if user_id is not None:
        body["user_id"] = user_id
    return body


def status_request(request_id: RequestId, op: str) -> dict[str, Any]:
    """The body of an ``info``, ``health`` or ``metrics`` request."""
    if op not in ("info", "health", "metrics"):
        raise ValueError(f"op must be info, health or metrics; got {op!r}")
    return _base(request_id, op)


def encode(body: dict[str, Any]) -> bytes:
    """One request body as the UTF-8 JSON the server reads.

    Raises ``ValueError`` for what the protocol cannot carry: NaN or infinite numbers, and text
    that is not valid Unicode (lone surrogates).
    """
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"request {body.get('id')!r} holds text that is not valid Unicode: {error.reason} "
                         f"at character {error.start}") from error
