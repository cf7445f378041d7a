"""A verl reward function backed by ``prm serve``: :func:`compute_score`.

verl calls a custom reward function once per response, with keyword arguments
(``verl/workers/reward_manager/naive.py``, ``NaiveRewardManager.__call__``)::

    score = self.compute_score(data_source=data_source, solution_str=response_str,
                               ground_truth=ground_truth, extra_info=extra_info)

where ``extra_info`` is the data set row's ``extra_info`` dict (verl adds ``num_turns``). Its
asynchronous reward loop (``docs/advance/reward_loop.rst``, ``RewardLoopManagerBase.run_single``)
calls a synchronous function from the event loop's default thread pool
(``loop.run_in_executor(None, ...)``) with two more keyword arguments, ``reward_router_address``
and ``reward_model_tokenizer``; ``reward_kwargs`` of the config are passed as keywords too
(``verl/trainer/ppo/reward.py``, ``get_custom_reward_fn``). So this function takes any other
keyword and ignores it, and shares one thread-safe :class:`prm_client.Client` per process.

Configure verl with this file's path (verl loads it by path, as a module of its own, which is why
it imports ``prm_client`` absolutely)::

    custom_reward_function.path=$(python3 -c 'import prm_client.verl as m; print(m.__file__)')
    custom_reward_function.name=compute_score

and the server with ``PRM_ENDPOINT`` (and ``PRM_TIMEOUT``), as for :func:`prm_client.trl.reward`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prm_client import environment
from prm_client.client import Client
from prm_client.messages import ScoreItem
from prm_client.rewards import floats
from prm_client.template import wire_prompt

#: The keys of ``extra_info`` read here.
USER_ID_KEY = "user_id"
PROMPT_KEY = "prompt"
USER_INFO_KEY = "user_info"


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> float:
    """The reward of one response, for the user and prompt in ``extra_info``.

    ``extra_info`` keys (put them in the data set's ``extra_info`` column when preprocessing):

    - ``"prompt"`` (required): the prompt the response answers: a string or a list of
      ``{"role", "content"}`` messages, written out by the server (:func:`prm_client.template.wire_prompt`);
    - ``"user_id"`` (optional): the user; missing, None or unknown means the generic user;
    - ``"user_info"`` (optional): explicit text about the user.

    ``data_source`` and ``ground_truth`` are not used (a preference model needs no reference
    answer); neither is any other keyword. A score the model could not compute is NaN.
    """
    info = extra_info if extra_info is not None else {}
    if PROMPT_KEY not in info:
        raise KeyError(f"extra_info has no {PROMPT_KEY!r} (keys: {sorted(info)}); prm_client.verl.compute_score scores "
                       f"the response as a reply to it")
    user_id = info.get(USER_ID_KEY)
    item = ScoreItem(prompt=wire_prompt(info[PROMPT_KEY]), response=solution_str,
                     user_id=None if user_id is None else str(user_id), user_info=info.get(USER_INFO_KEY))
    return floats(environment.shared(_environment_client).score([item]).scores)[0]


def _environment_client(endpoint: str, timeout: float) -> Client:
    return Client(endpoint, timeout)
