"""A ``…ForSequenceClassification`` reward model that carries its own chat template, served as it is
by a real ``prm serve`` process: the tiny random Qwen2 (ChatML) and Llama (Llama-3's template)
folders of Tests/Fixtures/chat-reward, whose ``tokenizer.apply_chat_template`` ids and scores
Tests/Reference/make_chat_reward.py recorded from ``transformers``. The server writes each
(prompt, reply) in the folder's template, so ranks score as the model does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import REPO, Server
from prm_client import Client

FIXTURES = REPO / "Tests" / "Fixtures" / "chat-reward"
#: Float32 through a different summation order than torch's.
TOLERANCE = 1e-4


@pytest.mark.parametrize("name, template", [("qwen2-chatml", "chatml"), ("llama3", "llama3")])
def test_ranks_score_as_transformers_in_the_folders_chat_template(tmp_path: Path, name: str, template: str) -> None:
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    conversations = expected["conversations"]
    scores = [result["score"] for result in expected["models"][name]]
    server = Server(FIXTURES / name, tmp_path, ["--user-log", str(tmp_path / "users.jsonl")]).start()
    with Client(server.endpoint, timeout=60, retries=0) as client:
        info = client.info()
        as_messages = [client.rank(c[:-1], [c[-1]], user_id="anyone").scores[0] for c in conversations]
        as_strings = [client.rank(c[:-1], [c[-1]["content"]]).scores[0] for c in conversations]
    assert server.stop() == 0
    assert info["model"]["template"] == template
    np.testing.assert_allclose(as_messages, scores, atol=TOLERANCE)
    np.testing.assert_allclose(as_strings, scores, atol=TOLERANCE)
