"""Session fixtures: one small checkpoint trained with the real binary, real ``prm serve`` processes.

Missing pieces (the binary, pyzmq, jsonschema, the MiniLM weights) fail the tests; nothing skips.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sys

from harness import DATA, PRM, REPO, SMALL_LIMITS, Pool, Schemas, Secure, Server, Wire, load_dialogues, prm_score

# The package under test is the source tree next to the tests, not whatever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from prm_client import Client  # noqa: E402

#: Distinct requests of the ``references`` fixture.
REFERENCE_REQUESTS = 96

#: The training run every test shares: a linear-head P-RM (so the server's h cache is in play),
#: 64 comparisons, one epoch, a 64-token window: about ten seconds on two cores.
TRAIN_ARGS = ["--data", str(DATA / "train.jsonl"), "--limit", "64", "--epochs", "1", "--max-length", "64",
              "--aggregator", "linear-head"]


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return Schemas()


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prm")


@pytest.fixture(scope="session")
def checkpoint(work_dir: Path) -> Path:
    if not PRM.is_file():
        pytest.fail(f"{PRM} is missing: build it with `swift build -c release` (scripts/setup.sh does)")
    if not (REPO / "models" / "all-MiniLM-L6-v2" / "model.safetensors").is_file():
        pytest.fail(f"{REPO / 'models/all-MiniLM-L6-v2'} is missing: run scripts/setup.sh")
    out = work_dir / "checkpoint"
    run = subprocess.run([str(PRM), "train", *TRAIN_ARGS, "--out", str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"prm train failed ({run.returncode}):\n{run.stderr[-4000:]}"
    return out


@pytest.fixture(scope="session")
def start_server(checkpoint: Path, work_dir: Path) -> Iterator[Callable[..., Server]]:
    """Starts ``prm serve`` with extra flags; every server still running at the end of the session
    is stopped with SIGTERM and must exit 0."""
    servers: list[Server] = []

    def start(*args: str, port: int | None = None, secure: Secure | None = None) -> Server:
        server = Server(checkpoint, work_dir, args, port=port, secure=secure)
        servers.append(server)
        return server.start()

    yield start
    failures = []
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            status = server.stop()
            if status != 0:
                failures.append(f"{server.endpoint} {server.args} exited {status}:\n{server.log()}")
    assert not failures, "\n".join(failures)


@pytest.fixture
def start_pool(checkpoint: Path, work_dir: Path, schemas: Schemas) -> Iterator[Callable[..., Pool]]:
    """Starts ``prm proxy`` with ``workers`` workers (``prm serve --connect``) and waits until all
    are in its pool; at the end of the test every process still running is stopped with SIGTERM
    (after SIGCONT) and must exit 0."""
    pools: list[Pool] = []

    def start(workers: int = 2, **options: Any) -> Pool:
        pool = Pool(checkpoint, work_dir, schemas, **options)
        pools.append(pool)
        return pool.start(workers)

    yield start
    failures = [failure for pool in pools for failure in pool.close()]
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="session")
def server(start_server: Callable[..., Server]) -> Server:
    """A server with the default limits and settings, shared by most tests."""
    return start_server()


@pytest.fixture(scope="session")
def limited_server(start_server: Callable[..., Server]) -> Server:
    """A server with SMALL_LIMITS."""
    return start_server("--max-candidates", str(SMALL_LIMITS["max_candidates"]),
                        "--max-message-bytes", str(SMALL_LIMITS["max_message_bytes"]),
                        "--max-request-tokens", str(SMALL_LIMITS["max_request_tokens"]))


@pytest.fixture
def wire(server: Server, schemas: Schemas) -> Iterator[Wire]:
    with Wire(server.endpoint, schemas) as socket:
        yield socket


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.endpoint, timeout=60, retries=1) as connection:
        yield connection


@pytest.fixture(scope="session")
def dialogues() -> list[dict[str, Any]]:
    return load_dialogues()


@pytest.fixture(scope="session")
def user_ids(checkpoint: Path) -> list[str]:
    """The checkpoint's known users, in index order."""
    table = json.loads((checkpoint / "users.json").read_text(encoding="utf-8"))
    return sorted(table, key=table.__getitem__)


@pytest.fixture(scope="session")
def references(checkpoint: Path, work_dir: Path, dialogues: list[dict[str, Any]],
               user_ids: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Rank requests (real prompts cut to the window, known users and strangers) with the scores
    in-process ``prm score`` gives them: the reference for scores that come through a proxy."""
    requests: list[dict[str, Any]] = []
    for number, row in enumerate(dialogues[64:64 + REFERENCE_REQUESTS]):
        user = user_ids[number % len(user_ids)] if number % 8 else f"stranger-{number}"
        requests.append({"user_id": user, "prompt": row["prompt"], "candidates": [row["chosen"], row["rejected"]]})
    return list(zip(requests, prm_score(checkpoint, requests, work_dir)))
