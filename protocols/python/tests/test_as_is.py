"""A Hugging Face ``…ForSequenceClassification`` reward model served as it is by a real ``prm serve``
process: the tiny random LlamaForSequenceClassification of Tests/Fixtures/llama-family, whose
``transformers`` logits Tests/Reference/make_llama_family.py recorded. Every user scores as that
model until the ``adapt`` op fits one on top of its score head.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from harness import REPO, Server
from prm_client import Client, Comparison

FIXTURES = REPO / "Tests" / "Fixtures" / "llama-family"
#: Float32 through a different summation order than torch's.
TOLERANCE = 1e-4


def fixture_inputs() -> list[tuple[str, str]]:
    """The fixture's token ids as (prompt, reply) texts: one id per byte, 256 for <|endoftext|>."""
    ids = json.loads((FIXTURES / "inputs.json").read_text(encoding="utf-8"))["ids"]
    text = lambda part: "".join("<|endoftext|>" if i == 256 else bytes([i]).decode("latin-1") for i in part)
    return [(text(row[:1]), text(row[1:])) for row in ids]


def test_served_as_is_scores_as_transformers_and_adapt_adds_a_user(tmp_path: Path) -> None:
    reference = load_file(str(FIXTURES / "llama-reference.safetensors"))
    expected = [float(reference[f"score.{b}"][0]) for b in range(len(fixture_inputs()))]
    # The user log goes to tmp_path: the committed fixture folder stays as it is.
    server = Server(FIXTURES / "llama", tmp_path, ["--user-log", str(tmp_path / "users.jsonl")]).start()
    brief = [Comparison("Tea?", "Yes.", "Yes, with milk and a little honey."),
             Comparison("Rain today?", "No.", "No, it stays dry until the evening."),
             Comparison("Best pet?", "A cat.", "A cat, since it keeps itself clean.")]
    with Client(server.endpoint, timeout=60, retries=0) as client:
        generic = [client.rank(prompt, [reply], user_id="brief") for prompt, reply in fixture_inputs()]
        margins_before = [client.rank(c.prompt, [c.chosen, c.rejected], user_id="brief").scores for c in brief]
        fitted = client.adapt("brief", brief)
        margins_after = [client.rank(c.prompt, [c.chosen, c.rejected], user_id="brief") for c in brief]
        still_generic = [client.rank(prompt, [reply], user_id="someone-else") for prompt, reply in fixture_inputs()]
    assert server.stop() == 0
    assert not any(r.known_user for r in generic)
    np.testing.assert_allclose([r.scores[0] for r in generic], expected, atol=TOLERANCE)
    np.testing.assert_allclose([r.scores[0] for r in still_generic], expected, atol=TOLERANCE)
    assert fitted.comparisons == 3 and fitted.adapted_users == 1
    assert all(r.known_user for r in margins_after)
    # The MAP fit starts at the generic user, so it can only raise the likelihood of what it fitted.
    log_likelihood = lambda pairs: sum(-math.log1p(math.exp(-(s[0] - s[1]))) for s in pairs)
    assert log_likelihood([r.scores for r in margins_after]) > log_likelihood(margins_before)
