"""``prm_client.verl.compute_score`` loaded and called as verl loads and calls a custom reward
function, without verl installed:

- loaded by path as a module named ``custom_module`` (verl/trainer/ppo/reward.py,
  ``get_custom_reward_fn``), with the config's ``reward_kwargs`` passed as keywords;
- called with keywords by ``NaiveRewardManager.__call__`` (verl/workers/reward_manager/naive.py),
  which adds ``num_turns`` to ``extra_info``;
- called from the event loop's default thread pool by the reward loop
  (docs/advance/reward_loop.rst, ``RewardLoopManagerBase.run_single``:
  ``loop.run_in_executor(None, lambda: compute_score(..., reward_router_address=...,
  reward_model_tokenizer=...))``), many samples at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import Server, assert_close
from prm_client import Client, ScoreItem

PACKAGE = Path(__file__).resolve().parents[1]
SAMPLES = 32


def load_like_verl() -> Callable[..., Any]:
    """``get_custom_reward_fn`` with ``custom_reward_function.path`` = verl.py, ``name`` =
    compute_score, and one ``reward_kwargs`` entry (ignored by compute_score)."""
    spec = importlib.util.spec_from_file_location("custom_module", PACKAGE / "src" / "prm_client" / "verl.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_module"] = module
    spec.loader.exec_module(module)
    raw_fn = getattr(module, "compute_score")
    reward_kwargs = {"format_weight": 0.1}

    def wrapped_fn(*args: Any, **kwargs: Any) -> Any:
        return raw_fn(*args, **kwargs, **reward_kwargs)

    return wrapped_fn


def samples(dialogues: list[dict[str, Any]], user_ids: list[str]) -> list[dict[str, Any]]:
    rows = []
    for number, row in enumerate(dialogues[100:100 + SAMPLES]):
        extra_info: dict[str, Any] = {"prompt": row["prompt"], "index": number}
        if number % 4:
            extra_info["user_id"] = user_ids[number % len(user_ids)] if number % 3 else f"stranger-{number}"
        rows.append({"data_source": "stylepref", "solution_str": row["chosen"][:300], "ground_truth": "",
                     "extra_info": extra_info})
    return rows


def direct(client: Client, rows: list[dict[str, Any]]) -> list[float | None]:
    return client.score([ScoreItem(row["extra_info"]["prompt"], row["solution_str"], row["extra_info"].get("user_id"))
                         for row in rows]).scores


def test_naive_reward_manager_calls(server: Server, client: Client, dialogues: list[dict[str, Any]], user_ids: list[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRM_ENDPOINT", server.endpoint)
    compute_score = load_like_verl()
    rows = samples(dialogues, user_ids)
    scores = []
    for row in rows:
        extra_info = dict(row["extra_info"])
        extra_info["num_turns"] = None  # NaiveRewardManager: extra_info["num_turns"] = num_turns
        score = compute_score(data_source=row["data_source"], solution_str=row["solution_str"],
                              ground_truth=row["ground_truth"], extra_info=extra_info)
        assert isinstance(score, float)
        scores.append(score)
    assert_close(scores, direct(client, rows), 1e-6, "naive")


def test_reward_loop_thread_pool(server: Server, client: Client, dialogues: list[dict[str, Any]], user_ids: list[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRM_ENDPOINT", server.endpoint)
    compute_score = load_like_verl()
    rows = samples(dialogues, user_ids)

    async def run_single(row: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: compute_score(
            data_source=row["data_source"], solution_str=row["solution_str"], ground_truth=row["ground_truth"],
            extra_info=row["extra_info"], reward_router_address=None, reward_model_tokenizer=None))

    async def run_all() -> list[Any]:
        return await asyncio.gather(*(run_single(row) for row in rows))

    assert_close(asyncio.run(run_all()), direct(client, rows), 1e-6, "reward loop")


def test_extra_info(server: Server, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRM_ENDPOINT", server.endpoint)
    compute_score = load_like_verl()
    response = "Try a regular bedtime and no screens for an hour before it."
    plain = compute_score("hh", response, None, {"prompt": "Human: I can't sleep.\n\nAssistant:", "user_id": "worker-2"})
    chat = compute_score("hh", response, None, {"prompt": [{"role": "user", "content": "I can't sleep."}], "user_id": "worker-2"})
    assert abs(plain - chat) <= 1e-6
    with_info = compute_score("hh", response, None, {"prompt": "I can't sleep.", "user_id": None, "user_info": "terse"})
    want = client.score([ScoreItem("Human: I can't sleep.\n\nAssistant:", response, None, "terse")]).scores[0]
    assert want is not None and abs(with_info - want) <= 1e-6
    with pytest.raises(KeyError, match="prompt"):
        compute_score("hh", response, None, {"user_id": "worker-2"})
    with pytest.raises(KeyError, match="prompt"):
        compute_score("hh", response, None)
