"""The server's address from the environment, for entry points that frameworks call by name
(``--reward_funcs prm_client.trl.reward``, verl's ``custom_reward_function``) and that therefore
take no arguments of their own.

- ``PRM_ENDPOINT``: the server's ZeroMQ endpoint (default ``tcp://127.0.0.1:5555``).
- ``PRM_TIMEOUT``: seconds a server may show no sign of life before an attempt is abandoned
  (default 5; with the one retry, a dead server is reported after twice that).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .client import DEFAULT_ENDPOINT, DEFAULT_TIMEOUT

T = TypeVar("T")

_lock = threading.Lock()
_shared: dict[tuple[Any, str, float], Any] = {}


def settings() -> tuple[str, float]:
    """``PRM_ENDPOINT`` and ``PRM_TIMEOUT``, with their defaults; ``ValueError`` naming a bad one."""
    endpoint = os.environ.get("PRM_ENDPOINT") or DEFAULT_ENDPOINT
    text = os.environ.get("PRM_TIMEOUT")
    if not text:
        return endpoint, DEFAULT_TIMEOUT
    try:
        timeout = float(text)
    except ValueError:
        timeout = math.nan
    if not timeout > 0 or math.isinf(timeout):
        raise ValueError(f"PRM_TIMEOUT must be a positive number of seconds; got {text!r}")
    return endpoint, timeout


def shared(make: Callable[[str, float], T]) -> T:
    """One ``make(endpoint, timeout)`` per process and per environment setting, made on first use
    (threads calling at once get the same one)."""
    endpoint, timeout = settings()
    key = (make, endpoint, timeout)
    with _lock:
        if key not in _shared:
            _shared[key] = make(endpoint, timeout)
        return _shared[key]  # type: ignore[no-any-return]
