"""Client for ``prm serve``: rank and score replies per user over ZeroMQ (protocol v1).

::

    from prm_client import Client, BestOfN

    with Client("tcp://127.0.0.1:5555", timeout=10, retries=3) as client:
        ranked = client.rank(prompt, candidates, user_id="worker-3")
        reward = client.trl_reward_func()          # for trl.GRPOTrainer(reward_funcs=[reward])

The protocol is described in protocols/PROTOCOL.md of the prm repository.
"""

from .best_of_n import BestOfN, BestOfNResult
from .client import DEFAULT_ENDPOINT, Client, ItemLike
from .curve import CurveKeys, read_key
from .errors import PrmClientError, PrmError, PrmProtocolError, PrmTimeoutError
from .messages import Health, Info, Limits, Metrics, ModelInfo, RankRequest, RankResult, ScoreItem, ScoreResult, Timing
from .protocol import PROTOCOL_VERSION, TRANSIENT_CODES, ErrorCode

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ENDPOINT",
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
    "PrmClientError",
    "PrmError",
    "PrmProtocolError",
    "PrmTimeoutError",
    "RankRequest",
    "RankResult",
    "ScoreItem",
    "ScoreResult",
    "Timing",
    "read_key",
]
