"""The TRL adapters (``prm_client.trl``) called exactly as TRL 1.16's ``GRPOTrainer`` calls reward
functions, without TRL installed: the keyword arguments are built by ``calculate_rewards`` below,
which follows ``GRPOTrainer._calculate_rewards`` (trl 1.16.0, trl/trainer/grpo_trainer.py lines
1579-1662), and async functions are detected and awaited as there (``is_async_callable``,
trl/trainer/utils.py line 247; ``asyncio.run_coroutine_threadsafe`` onto a loop in a daemon thread,
grpo_trainer.py line 1660)."""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib
import inspect
import math
import multiprocessing
import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness import Server, assert_close
from prm_client import Client, ScoreItem
from prm_client.template import wire_prompt, wire_reply
from prm_client.trl import AsyncPrmReward, PrmReward

QUESTIONS = ["How do I make my houseplants thrive?", "What's a quick breakfast idea?"]
REPLIES = [["Water them.", "Give them bright indirect light and water when the top inch of soil is dry.", "Talk to them."],
           ["Toast.", "Overnight oats: mix oats, milk and fruit the evening before.", "Yogurt with granola."]]
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


class TrainerLog:
    """What TRL's ``_log_completion_extra`` and ``_log_metric`` (grpo_trainer.py lines 1553-1576) collect."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = collections.defaultdict(list)
        self.extra: dict[str, list[Any]] = collections.defaultdict(list)

    def log_extra(self, column: str, values: list[Any]) -> None:
        self.extra[column].extend(values)

    def log_metric(self, name: str, value: float) -> None:
        self.metrics[name].append(value)


def is_async_callable(func: Callable[..., Any]) -> bool:
    """trl/trainer/utils.py line 247."""
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(func.__call__)  # type: ignore[operator]


def callable_name(func: Callable[..., Any]) -> str:
    """trl/trainer/utils.py line 236 (``get_callable_name``): the name TRL logs rewards under."""
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", type(func).__name__)


@pytest.fixture(scope="module")
def trl_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """TRL's event loop for async reward functions: one loop in a daemon thread
    (``start_event_loop_in_daemon``, grpo_trainer.py line 753)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def calculate_rewards(reward_func: Callable[..., Any], inputs: list[dict[str, Any]], prompts: list[Any],
                      completions: list[Any], completion_ids_list: list[list[int]], log: TrainerLog,
                      loop: asyncio.AbstractEventLoop) -> list[float]:
    """One reward function's column of ``GRPOTrainer._calculate_rewards``, as TRL 1.16 builds its call."""
    keys = [key for key in inputs[0] if key not in ["prompt", "completion", "completion_ids"]]
    reward_kwargs: dict[str, Any] = {key: [example[key] for example in inputs] for key in keys}
    reward_kwargs["trainer_state"] = object()  # self.state: a TrainerState the function may read
    reward_kwargs["log_extra"] = log.log_extra
    reward_kwargs["log_metric"] = log.log_metric
    if is_async_callable(reward_func):
        async def invoke() -> Any:
            return await reward_func(prompts=prompts, completions=completions, completion_ids=completion_ids_list,
                                     **reward_kwargs)
        output = asyncio.run_coroutine_threadsafe(invoke(), loop).result()
    else:
        output = reward_func(prompts=prompts, completions=completions, completion_ids=completion_ids_list, **reward_kwargs)
    output = [reward if reward is not None else math.nan for reward in output]
    assert len(output) == len(prompts), "TRL raises: one reward per completion"
    return output


def grpo_batch(rows: list[dict[str, Any]], conversational: bool) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """A GRPO batch: each row repeated once per generation (TRL's ``RepeatSampler``), the
    prompt and completion in the data set's format."""
    inputs, prompts, completions = [], [], []
    for row, replies in zip(rows, REPLIES):
        for reply in replies:
            inputs.append(row)
            prompts.append(row["prompt"])
            completions.append([{"role": "assistant", "content": reply}] if conversational else reply)
    return inputs, prompts, completions


def plain_rows(users: list[Any]) -> list[dict[str, Any]]:
    return [{"prompt": f"Human: {question}\n\nAssistant:", "user_id": user, "ground_truth": "unused", "difficulty": 3}
            for question, user in zip(QUESTIONS, users)]


def conversational_rows(users: list[Any]) -> list[dict[str, Any]]:
    return [{"prompt": [SYSTEM, {"role": "user", "content": question}], "user_id": user}
            for question, user in zip(QUESTIONS, users)]


def direct_scores(client: Client, users: list[Any]) -> list[float | None]:
    items = [ScoreItem(f"Human: {question}\n\nAssistant:", reply, None if user is None else str(user))
             for question, user, replies in zip(QUESTIONS, users, REPLIES) for reply in replies]
    return client.score(items).scores


@pytest.mark.parametrize("kind", [PrmReward, AsyncPrmReward])
@pytest.mark.parametrize("conversational", [False, True])
def test_called_as_grpo_trainer_calls_it(kind: type[PrmReward], conversational: bool, server: Server, client: Client,
                                         trl_loop: asyncio.AbstractEventLoop) -> None:
    reward = kind(server.endpoint, timeout=60, name="personal")
    assert callable_name(reward) == "personal"
    assert is_async_callable(reward) == (kind is AsyncPrmReward)
    users = ["worker-3", 12]  # data sets often hold numeric ids
    rows = (conversational_rows if conversational else plain_rows)(users)
    inputs, prompts, completions = grpo_batch(rows, conversational)
    log = TrainerLog()
    rewards = calculate_rewards(reward, inputs, prompts, completions, [[1, 2]] * len(prompts), log, trl_loop)
    # The same dialogue gives the same reward in either format (the system turn is left out).
    assert_close(rewards, direct_scores(client, users), 1e-6, "rewards")
    known = client.score([ScoreItem("Human: x\n\nAssistant:", "y", str(user)) for user in users]).known_user
    assert reward.known_user_fraction == sum(known) / len(known)
    assert reward.queue_ms is not None and reward.queue_ms >= 0
    assert log.metrics == {"personal/known_user_fraction": [reward.known_user_fraction], "personal/queue_ms": [reward.queue_ms]}


def test_a_data_set_without_user_ids_is_scored_as_the_generic_user(server: Server, client: Client,
                                                                   trl_loop: asyncio.AbstractEventLoop) -> None:
    rows = [{"prompt": f"Human: {question}\n\nAssistant:"} for question in QUESTIONS]
    inputs, prompts, completions = grpo_batch(rows, conversational=False)
    for reward in (PrmReward(server.endpoint, timeout=60), AsyncPrmReward(server.endpoint, timeout=60)):
        log = TrainerLog()
        rewards = calculate_rewards(reward, inputs, prompts, completions, [[1]] * len(prompts), log, trl_loop)
        assert_close(rewards, direct_scores(client, [None, None]), 1e-6, "generic user")
        assert reward.known_user_fraction == 0.0


def test_user_info_column_and_plain_prompts_without_tags(server: Server, client: Client,
                                                         trl_loop: asyncio.AbstractEventLoop) -> None:
    # TRL's standard format often has untagged prompts: they are read as one human turn, exactly
    # as the conversational prompt [{"role": "user", ...}] is.
    rows = [{"prompt": question, "user_id": "stranger", "user_info": info}
            for question, info in zip(QUESTIONS, ["likes detail", None])]
    inputs, prompts, completions = grpo_batch(rows, conversational=False)
    rewards = calculate_rewards(PrmReward(server.endpoint, timeout=60), inputs, prompts, completions, [[1]] * 6,
                                TrainerLog(), trl_loop)
    want = client.score([ScoreItem(f"Human: {question}\n\nAssistant:", reply, "stranger", info)
                         for question, info, replies in zip(QUESTIONS, ["likes detail", None], REPLIES)
                         for reply in replies]).scores
    assert_close(rewards, want, 1e-6, "untagged")
    assert wire_prompt(QUESTIONS[0]) == wire_prompt([{"role": "user", "content": QUESTIONS[0]}])


def test_wire_prompt_sends_messages_for_the_server_to_write() -> None:
    conversation = [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": [{"type": "text", "text": "Dinner idea?"}]}]
    assert wire_prompt(conversation) == [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                                         {"role": "user", "content": "Dinner idea?"}]
    assert wire_prompt("Human: Hi\n\nAssistant:") == "Human: Hi\n\nAssistant:"
    assert wire_prompt("Hi") == [{"role": "user", "content": "Hi"}]
    assert wire_reply([{"role": "assistant", "content": "Soup."}]) == {"role": "assistant", "content": "Soup."}
    assert wire_reply([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "b"}]) == "a\n\nb"
    with pytest.raises(ValueError, match="role"):
        wire_prompt([{"content": "no role"}])


def test_misuse_is_reported(server: Server) -> None:
    reward = PrmReward(server.endpoint, timeout=60)
    with pytest.raises(ValueError, match="one value per completion"):
        reward(prompts=["Human: a\n\nAssistant:"] * 2, completions=["x", "y"], user_id=["worker-3"])
    with pytest.raises(ValueError, match="2 prompts for 1 completions"):
        reward(prompts=["a", "b"], completions=["x"])
    with pytest.raises(TypeError, match="user_id"):
        reward(prompts=["a"], completions=["x"], user_id=[3.5])
    assert reward(prompts=[], completions=[], user_id=[]) == []


def _call_in_child(reward: PrmReward, rows: list[dict[str, Any]]) -> list[float]:
    inputs, prompts, completions = grpo_batch(rows, conversational=False)
    return reward(prompts=prompts, completions=completions, user_id=[row["user_id"] for row in inputs])


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_pickled_into_a_child_process(start_method: str, server: Server, client: Client) -> None:
    # TRL's experimental AsyncGRPOTrainer pickles reward functions into a child process.
    users = ["worker-5", "worker-6"]
    reward = PrmReward(server.endpoint, timeout=60)
    rows = plain_rows(users)
    here = _call_in_child(reward, rows)  # the parent has connected: its client must not travel
    copy = pickle.loads(pickle.dumps(reward))
    assert copy._client is None and copy.endpoint == server.endpoint and callable_name(copy) == "prm_reward"
    assert_close(_call_in_child(copy, rows), here, 1e-6, "unpickled")
    with multiprocessing.get_context(start_method).Pool(1) as pool:
        there = pool.apply(_call_in_child, (reward, rows))
    assert_close(there, here, 1e-6, start_method)
    assert_close(here, direct_scores(client, users), 1e-6, "direct")
    async_copy = pickle.loads(pickle.dumps(AsyncPrmReward(server.endpoint)))
    assert async_copy._client is None and is_async_callable(async_copy)


def test_eight_threads_share_one_reward_function(server: Server, client: Client) -> None:
    reward = PrmReward(server.endpoint, timeout=60)
    rows = plain_rows(["worker-7", None])
    want = direct_scores(client, ["worker-7", None])
    failures: list[str] = []

    def run(thread: int) -> None:
        for call in range(25):
            try:
                assert_close(_call_in_child(reward, rows), want, 1e-6, f"thread {thread} call {call}")
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                failures.append(repr(error))

    threads = [threading.Thread(target=run, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == [], failures[:3]


def test_the_module_function_for_reward_funcs_flags(server: Server, client: Client, monkeypatch: pytest.MonkeyPatch,
                                                    trl_loop: asyncio.AbstractEventLoop) -> None:
    # TRL's grpo.py script: `--reward_funcs prm_client.trl.reward` is split at the last dot, the
    # module imported and the function taken by name (trl/scripts/grpo.py lines 96-105).
    monkeypatch.setenv("PRM_ENDPOINT", server.endpoint)
    monkeypatch.setenv("PRM_TIMEOUT", "60")
    module_path, func_name = "prm_client.trl.reward".rsplit(".", 1)
    reward = getattr(importlib.import_module(module_path), func_name)
    assert callable_name(reward) == "reward" and not is_async_callable(reward)
    users = ["worker-8", None]
    inputs, prompts, completions = grpo_batch(plain_rows(users), conversational=False)
    log = TrainerLog()
    rewards = calculate_rewards(reward, inputs, prompts, completions, [[1]] * 6, log, trl_loop)
    assert_close(rewards, direct_scores(client, users), 1e-6, "module function")
    assert set(log.metrics) == {"reward/known_user_fraction", "reward/queue_ms"}
    monkeypatch.setenv("PRM_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="PRM_TIMEOUT"):
        reward(prompts=prompts, completions=completions)
