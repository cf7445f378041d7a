"""Client for ``prm serve``: rank and score replies per user over ZeroMQ (protocol v1).

::

    from prm_client import Client, BestOfN

    with Client("tcp://127.0.0.1:5555") as client:        # one client may serve many threads
        ranked = client.rank(prompt, candidates, user_id="worker-3")

    async with AsyncClient("tcp://127.0.0.1:5555") as client:
        ranked = await client.rank(prompt, candidates, user_id="worker-3")

Adapters: ``prm_client.trl`` (``PrmReward``, ``AsyncPrmReward``, ``reward`` for TRL's
``GRPOTrainer``) and ``prm_client.verl.compute_score``.

The protocol is described in protocols/PROTOCOL.md of the prm repository.
"""

from .async_client import AsyncClient
from .best_of_n import BestOfN, BestOfNResult
from .client import DEFAULT_ENDPOINT, DEFAULT_RETRIES, DEFAULT_TIMEOUT, Client, ItemLike
from .curve import CurveKeys, read_key
from .errors import PrmClientError, PrmError, PrmProtocolError, PrmTimeoutError
from .messages import (AdaptResult, Comparison, Health, Info, Limits, Metrics, ModelInfo, PromptInput, RankRequest, RankResult, ReplyInput, ScoreItem,
                       ScoreResult, SuggestedPair, SuggestResult, Timing)
from .protocol import PROTOCOL_VERSION, TRANSIENT_CODES, ErrorCode

__version__ = "0.1.0"

__all__ = [
    "AdaptResult",
    "Comparison",
    "AsyncClient",
    "DEFAULT_ENDPOINT",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "PROTOCOL_VERSION",
    "TRANSIENT_CODES",
    "BestOfN",
    "BestOfNResult",
    "Client",
    "CurveKeys",
    "ErrorCode",
    "Health",
    "Info",
    "ItemLike",
    "Limits",
    "Metrics",
    "ModelInfo",
    "PromptInput",
    "PrmClientError",
    "PrmError",
    "PrmProtocolError",
    "PrmTimeoutError",
    "RankRequest",
    "RankResult",
    "ReplyInput",
    "ScoreItem",
    "ScoreResult",
    "SuggestedPair",
    "SuggestResult",
    "Timing",
    "read_key",
]
