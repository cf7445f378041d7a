"""Typed shapes of what the client takes and returns: plain dataclasses and typed dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Union

#: A prompt as protocol v1 takes it: text, or ``{"role", "content"}`` chat messages that the
#: server writes out with the model's text template (PROTOCOL.md, "Chat messages").
PromptInput = Union[str, Sequence[Mapping[str, str]]]
#: A reply: text, or one ``{"role": "assistant", "content"}`` message.
ReplyInput = Union[str, Mapping[str, str]]


@dataclass(frozen=True)
class Timing:
    """Where a request's time went on the server, in milliseconds."""

    #: From receipt to the start of its computation.
    queue_ms: float
    #: The whole batch that computed it (requests that arrive together are computed together).
    compute_ms: float


@dataclass(frozen=True)
class RankRequest:
    """One ``rank`` request, for :meth:`prm_client.Client.rank_many`."""

    prompt: PromptInput
    candidates: Sequence[ReplyInput]
    user_id: str | None = None
    user_info: str | None = None
    top_k: int | None = None
    deadline_ms: float | None = None
    #: Ask for each score's standard deviation for the user (:attr:`RankResult.std`).
    uncertainty: bool = False


@dataclass(frozen=True)
class RankResult:
    """The server's ranking of one candidate list for one user."""

    #: One per candidate, in input order; higher is better for this user. ``None`` only if the
    #: model produced a non-finite value.
    scores: list[float | None]
    #: Candidate indices best first (ties: lower index first), ``top_k`` long if it was given.
    order: list[int]
    #: Whether the user id is one of the model's users (False: scored as the generic user).
    known_user: bool
    #: Indices of candidates whose input was cut to the model's window.
    truncated: list[int]
    timing: Timing
    #: The model that computed the scores (``info()["model"]["fingerprint"]``); ``None`` from a
    #: server older than hot reload.
    model_fingerprint: str | None = None
    #: With ``uncertainty=True``: "prior" (a user the server does not know), "posterior" (a user
    #: this server adapted: the Laplace approximation of the fit) or "unavailable"; else ``None``.
    uncertainty: str | None = None
    #: Per candidate, the standard deviation of its score under that belief; ``None`` when
    #: not asked for or unavailable (:attr:`uncertainty_reason` says why).
    std: list[float] | None = None
    uncertainty_reason: str | None = None

    @property
    def best(self) -> int:
        """Index of the best candidate."""
        return self.order[0]


@dataclass(frozen=True)
class Comparison:
    """One answered question of a user, for :meth:`prm_client.Client.adapt`: ``chosen`` was
    preferred to ``rejected`` as a reply to ``prompt``."""

    prompt: PromptInput
    chosen: ReplyInput
    rejected: ReplyInput


@dataclass(frozen=True)
class AdaptResult:
    """What the server's fit of a user from its comparisons gave: the user is known from now on."""

    user_id: str
    #: Comparisons fitted, and how many of them the fitted user's rewards order right.
    comparisons: int
    correct: int
    #: Mean −log σ(r(chosen) − r(rejected)) under the fitted user.
    mean_loss: float
    #: Users the server (the worker that fitted it) holds from ``adapt`` and its user log.
    adapted_users: int
    timing: Timing


@dataclass(frozen=True)
class SuggestedPair:
    """One question ``suggest`` proposes: which of two candidates does the user prefer?"""

    #: Candidate indices.
    first: int
    second: int
    #: The probability that the user prefers ``first``, at the server's current belief.
    p_first: float
    #: How much the answer is expected to reduce :attr:`SuggestResult.total_variance`, after the
    #: pairs before it.
    variance_reduction: float


@dataclass(frozen=True)
class SuggestResult:
    """The pairs whose answers would tell the server the most about a user, best first."""

    pairs: list[SuggestedPair]
    #: "prior" (a newcomer) or "posterior" (a user this server adapted).
    uncertainty: str
    #: Summed posterior variance of the reward differences of every pair of candidates.
    total_variance: float
    known_user: bool
    timing: Timing
    model_fingerprint: str


@dataclass(frozen=True)
class ScoreItem:
    """One (user, prompt, response) triple for :meth:`prm_client.Client.score`."""

    prompt: PromptInput
    response: ReplyInput
    user_id: str | None = None
    user_info: str | None = None


@dataclass(frozen=True)
class ScoreResult:
    """Scores of unrelated items, in input order."""

    scores: list[float | None]
    #: One per item.
    known_user: list[bool]
    #: Indices (into the items given) of inputs cut to the model's window.
    truncated: list[int]
    #: One per request the items were sent in (large lists are split into several requests).
    timings: list[Timing] = field(default_factory=list)


class ModelInfo(TypedDict):
    """``info``'s ``model`` member."""

    path: str
    backbone: str
    aggregator: str
    user_model: str
    users: int
    max_length: int
    hidden_size: int
    #: How the server writes chat messages as the model's text: ``"hh"`` or ``"plain"``; ``"chatml"`` or
    #: ``"llama3"`` for a ``…ForSequenceClassification`` folder served in its own chat template.
    template: str
    #: The encoder's inference precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (``prm serve --precision``).
    precision: str


class Limits(TypedDict):
    """``info``'s ``limits`` member: requests beyond these are refused with an error code."""

    max_message_bytes: int
    max_candidates: int
    max_request_tokens: int
    max_queued_requests: int
    max_adapt_comparisons: int
    max_suggest_candidates: int
    max_suggest_pairs: int


class ServerSettings(TypedDict):
    """``info``'s ``server`` member."""

    batch_tokens: int
    max_wait_ms: float
    cache_entries: int


class Info(TypedDict):
    """The ``info`` reply (without ``v``, ``id`` and ``ok``)."""

    protocol: int
    prm_version: str
    model: ModelInfo
    limits: Limits
    server: ServerSettings


class ComputeStatus(TypedDict):
    """``health``'s ``compute`` member."""

    state: str
    last_progress_ms: float
    queued: int


class Health(TypedDict):
    """The ``health`` reply (without ``v``, ``id`` and ``ok``)."""

    status: str
    healthy: bool
    compute: ComputeStatus
    uptime_s: float


class Percentiles(TypedDict):
    p50: float
    p95: float
    p99: float


class QueueStats(TypedDict):
    depth: int
    max_depth: int
    capacity: int


class BatchStats(TypedDict):
    count: int
    requests: int
    items: int
    tokens: int
    mean_requests: float
    mean_tokens: float
    max_tokens: int


class CacheStats(TypedDict):
    entries: int
    capacity: int
    hits: int
    misses: int
    hit_rate: float


class Latency(TypedDict):
    queue: Percentiles
    compute: Percentiles
    total: Percentiles


class Metrics(TypedDict):
    """The ``metrics`` reply (without ``v``, ``id`` and ``ok``)."""

    requests: dict[str, int]
    errors: dict[str, int]
    queue: QueueStats
    batches: BatchStats
    cache: CacheStats
    replies_dropped: int
    latency_ms: Latency
