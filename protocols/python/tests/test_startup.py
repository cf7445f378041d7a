"""What ``prm serve`` and ``prm proxy`` check before they bind, and what they start before they
answer: a wrong option is one usage line and exit 2 (never a server on another port, an abort or
a death on the first request), and the compute threads exist before the first request."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import PRM, REPO, Server, Wire, Schemas

#: Seconds a refused command may take: it stops before loading a model or binding a socket.
#: A command that is not refused runs on as a server, and the test fails when this runs out.
REFUSAL_TIMEOUT = 60.0


def refused(arguments: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Runs ``prm`` and asserts the usage-error shape: exit 2, nothing on stdout, a message line
    and a usage line on stderr, and no 'reachable from the network' banner before them."""
    try:
        run = subprocess.run([str(PRM), *arguments], cwd=REPO, capture_output=True, text=True, timeout=REFUSAL_TIMEOUT)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"prm {' '.join(arguments)} was not refused: still running after {REFUSAL_TIMEOUT} s\n"
                             f"{expired.stderr!r}") from None
    assert run.returncode == 2, f"prm {' '.join(arguments)} exited {run.returncode}:\n{run.stderr[-3000:]}"
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 2 and lines[1].startswith("usage: prm "), run.stderr
    assert "WITHOUT authentication" not in run.stderr
    return run


def test_out_of_range_ports_are_refused_before_binding(checkpoint: Path) -> None:
    # libzmq keeps a port's low 16 bits: 99999 listened on 34463, after the exposure warning.
    for option, endpoint in [("--bind", "tcp://0.0.0.0:99999"), ("--bind", "tcp://127.0.0.1:65536"),
                             ("--connect", "tcp://127.0.0.1:99999"), ("--bind", "udp://127.0.0.1:5555")]:
        run = refused(["serve", "--model", str(checkpoint), option, endpoint])
        assert run.stderr.startswith(f"prm serve: {option} '{endpoint}': "), run.stderr
    for option, endpoint in [("--front", "tcp://*:99999"), ("--back", "tcp://0.0.0.0:123456")]:
        run = refused(["proxy", option, endpoint])
        assert run.stderr.startswith(f"prm proxy: {option} '{endpoint}': the port must be 1-65535 or *"), run.stderr
    run = refused(["score", "--server", "tcp://127.0.0.1:99999", "--prompt", "p", "a reply"])
    assert run.stderr.startswith("prm score: --server 'tcp://127.0.0.1:99999': the port must be 1-65535 or *"), run.stderr


def test_absurd_cache_and_thread_counts_are_refused(checkpoint: Path) -> None:
    # The cache was allocated in full at start: exit 134, "failed to allocate 4799999999984 bytes".
    run = refused(["serve", "--model", str(checkpoint), "--cache-entries", "99999999999"])
    assert run.stderr.startswith("prm serve: --cache-entries must be at most"), run.stderr
    run = refused(["serve", "--model", str(checkpoint), "--cache-memory", "a lot"])
    assert run.stderr.startswith("prm serve: --cache-memory expects a size"), run.stderr
    # 100000 threads started, then the first rank died in libgomp ("Thread creation failed").
    run = refused(["serve", "--model", str(checkpoint), "--threads", "100000"])
    assert run.stderr.startswith("prm serve: --threads must be at most"), run.stderr


def task_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_compute_threads_start_before_the_server_answers(start_server: Callable[..., Server], schemas: Schemas) -> None:
    """A request starts no thread: the pool the compute thread uses was started by a warm-up pass
    before the first answer, so a system that cannot give the threads fails the server at
    start-up, not a client's request. One thread above the cores is allowed, with a warning."""
    threads = (os.cpu_count() or 1) + 1
    server = start_server("--threads", str(threads), "--cache-entries", "0")
    before = task_count(server.pid)
    with Wire(server.endpoint, schemas) as wire:
        reply = wire.call({"v": 1, "id": 1, "op": "rank", "prompt": "Human: Any tips for sleeping?\n\nAssistant:",
                           "candidates": ["Keep a regular schedule.", "No screens in bed, and a dark, cool room."]}).body
    assert len(reply["scores"]) == 2
    assert task_count(server.pid) == before, f"the first request started {task_count(server.pid) - before} threads"
    warnings = [line for line in server.full_log().splitlines() if "--threads" in line]
    assert len(warnings) == 1 and "more than this machine's" in warnings[0], server.log()
    assert server.stop() == 0, server.log()
