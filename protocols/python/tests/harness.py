"""Real ``prm`` processes, raw ZeroMQ sockets and the v1 JSON Schemas, for the wire-level tests.

Nothing here is mocked: servers are the release binary on loopback TCP, references come from the
same binary's in-process ``prm score``, and every reply a raw socket receives is validated against
the schemas in protocols/v1.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[3]
SCHEMA_DIR = REPO / "protocols" / "v1"
PRM = Path(os.environ.get("PRM_BINARY", REPO / ".build" / "release" / "prm"))
DATA = REPO / "data" / "lengthpref"

#: The limits of the ``limited_server`` fixture: small enough to reach with a few requests.
SMALL_LIMITS = {"max_candidates": 8, "max_message_bytes": 8192, "max_request_tokens": 300}

#: Seconds a test waits for one reply before it fails (generous: CI machines are shared).
REPLY_TIMEOUT = 60.0

#: Heartbeats of the proxy tests: short, so that a dead worker is noticed within a second.
HEARTBEAT_MS = 200.0
LIVENESS = 3

#: Makes a socket a CURVE client before it connects (``prm_client.CurveKeys.apply``), for the
#: harness's own sockets on a server or proxy that requires CURVE.
Secure = Callable[["zmq.Socket[bytes]"], None]


#: Ports already handed out by ``free_port`` in this session (a restarted process reuses its own).
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral
    range: a port from ``bind(0)`` lies inside that range, where any outgoing connection (a
    reconnecting worker or client) may take it as its source port before the test's process
    binds it ("Address already in use")."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii").split()[0])
    chooser = random.SystemRandom()
    for _ in range(200):
        port = chooser.randrange(max(1024, low - 16384), low)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    pytest.fail(f"no free TCP port below the ephemeral range (which starts at {low})")


class Schemas:
    """The protocol's JSON Schemas, with their relative ``$ref``s resolved through a registry."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        if not directory.is_dir():
            pytest.fail(f"{directory} is missing: the tests validate every reply against the v1 schemas")
        self.documents: dict[str, dict[str, Any]] = {}
        resources = []
        for path in sorted(directory.glob("*.schema.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            self.documents[path.name] = document
            resources.append((document["$id"], Resource.from_contents(document)))
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, name: str) -> Draft202012Validator:
        if name not in self._validators:
            self._validators[name] = Draft202012Validator(self.documents[name], registry=self.registry)
        return self._validators[name]

    def check_reply(self, reply: Mapping[str, Any], op: str | None) -> None:
        """Fails the test unless ``reply`` is a valid error reply, or a valid ok reply to ``op``."""
        if reply.get("ok") is False:
            name = "error.reply.schema.json"
        elif op is None:
            pytest.fail(f"an ok reply to a request with no readable op: {reply}")
        else:
            name = f"{op}.reply.schema.json"
        errors = sorted(self.validator(name).iter_errors(reply), key=str)
        if errors:
            pytest.fail(f"reply does not match {name}: {errors[0].message} at {list(errors[0].absolute_path)}\nreply: {reply}")

    def check_request(self, body: Mapping[str, Any]) -> None:
        errors = sorted(self.validator("request.schema.json").iter_errors(body), key=str)
        if errors:
            pytest.fail(f"request does not match request.schema.json: {errors[0].message}\nrequest: {body}")


@dataclass
class Reply:
    """One reply as received: its frames, and its body parsed."""

    frames: list[bytes]
    body: dict[str, Any]

    @property
    def raw(self) -> bytes:
        return self.frames[-1]

    @property
    def ok(self) -> bool:
        return self.body.get("ok") is True

    @property
    def code(self) -> str | None:
        error = self.body.get("error")
        return error.get("code") if isinstance(error, dict) else None

    @property
    def message(self) -> str:
        error = self.body.get("error")
        return str(error.get("message")) if isinstance(error, dict) else ""


def parse_reply(frames: list[bytes], schemas: Schemas, op: str | None) -> Reply:
    """Parses and validates a reply: strict JSON (no NaN, no duplicate keys), a valid schema."""

    def reject_constant(name: str) -> None:
        pytest.fail(f"reply holds the non-JSON literal {name}: {frames[-1][:300]!r}")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(keys) != len(set(keys)):
            pytest.fail(f"reply has duplicate keys {keys}: {frames[-1][:300]!r}")
        return dict(pairs)

    try:
        body = json.loads(frames[-1].decode("utf-8"), parse_constant=reject_constant, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        pytest.fail(f"reply is not UTF-8 JSON ({error}): {frames[-1][:300]!r}")
    if not isinstance(body, dict):
        pytest.fail(f"reply is not a JSON object: {frames[-1][:300]!r}")
    schemas.check_reply(body, op)
    return Reply(frames, body)


def op_of(body: bytes | Mapping[str, Any]) -> str | None:
    """The op a request body asks for, if it can be read."""
    if isinstance(body, Mapping):
        op = body.get("op")
        return op if isinstance(op, str) else None
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting defeats Python's parser
        return None
    return op_of(value) if isinstance(value, dict) else None


class Wire:
    """A raw socket (DEALER by default) on a server; every reply is parsed and schema-checked."""

    def __init__(self, endpoint: str, schemas: Schemas, kind: int = zmq.DEALER, context: zmq.Context[Any] | None = None,
                 secure: Secure | None = None) -> None:
        self.schemas = schemas
        self.socket: zmq.Socket[bytes] = (context or zmq.Context.instance()).socket(kind)
        self.socket.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure(self.socket)
        self.socket.connect(endpoint)

    def close(self) -> None:
        self.socket.close(linger=0)

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, frames: Sequence[bytes]) -> None:
        self.socket.send_multipart(list(frames))

    def receive(self, timeout: float = REPLY_TIMEOUT) -> list[bytes]:
        if not self.socket.poll(int(timeout * 1000), zmq.POLLIN):
            pytest.fail(f"no reply within {timeout} s")
        return self.socket.recv_multipart()

    def silent_for(self, seconds: float) -> bool:
        """True if nothing arrives for ``seconds``."""
        return not self.socket.poll(int(seconds * 1000), zmq.POLLIN)

    def call(self, body: bytes | Mapping[str, Any], envelope: Sequence[bytes] = (b"",), timeout: float = REPLY_TIMEOUT) -> Reply:
        """Sends ``envelope + [body]`` and returns the reply, checking it mirrors the envelope."""
        raw = body if isinstance(body, bytes) else encode(body)
        self.send([*envelope, raw])
        frames = self.receive(timeout)
        assert frames[:-1] == list(envelope), f"reply envelope {frames[:-1]} does not mirror {list(envelope)}"
        return parse_reply(frames, self.schemas, op_of(raw))


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def await_answer(endpoint: str, process: subprocess.Popen[bytes], what: str, log: Callable[[], str],
                 timeout: float, secure: Secure | None = None) -> None:
    """Waits until ``endpoint`` answers a ``health`` request; fails the test if the process exits
    or stays silent for ``timeout`` seconds."""
    probe: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    probe.setsockopt(zmq.LINGER, 0)
    if secure is not None:
        secure(probe)
    probe.connect(endpoint)
    deadline = time.monotonic() + timeout
    try:
        # Sent once: ZeroMQ holds it until the process binds, so no duplicate is ever answered.
        probe.send_multipart([b"", b'{"v":1,"id":"ready?","op":"health"}'])
        while time.monotonic() < deadline:
            if probe.poll(250, zmq.POLLIN):
                probe.recv_multipart()
                return
            if process.poll() is not None:
                pytest.fail(f"{what} exited with {process.returncode} before answering:\n{log()}")
    finally:
        probe.close(linger=0)
    process.kill()
    process.wait()
    pytest.fail(f"{what} did not answer health within {timeout} s:\n{log()}")


class PrmProcess:
    """A ``prm`` subprocess whose output goes to a log file."""

    #: The subcommand, for file names and messages.
    role = "prm"

    def __init__(self, log_dir: Path, label: str) -> None:
        self.log_path = log_dir / f"{self.role}-{label}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self, arguments: Sequence[str]) -> subprocess.Popen[bytes]:
        if not PRM.is_file():
            pytest.fail(f"{PRM} is missing: build it with `swift build -c release` (scripts/setup.sh does)")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([str(PRM), self.role, *arguments], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def full_log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, number: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        """The exit status; fails the test if the process is still running after ``timeout``."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"prm {self.role} still running {timeout} s after the signal:\n{self.log()}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (after SIGCONT, in case a test stopped it), then the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def rss_bytes(self) -> int:
        """Resident memory now, from /proc/PID/status (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                value, unit = line.split()[1:3]
                assert unit == "kB", line
                return int(value) * 1024
        pytest.fail(f"/proc/{self.pid}/status has no VmRSS line")


class Server(PrmProcess):
    """A ``prm serve`` process on a free loopback port."""

    role = "serve"

    def __init__(self, model: Path, log_dir: Path, args: Iterable[str] = (), port: int | None = None,
                 secure: Secure | None = None) -> None:
        self.model = model
        self.args = list(args)
        self.secure = secure
        self.port = port if port is not None else free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        super().__init__(log_dir, str(self.port))

    def start(self, ready_timeout: float = 120.0) -> Server:
        """Starts the process and waits until it answers ``health``; fails the test otherwise."""
        process = self.launch(["--model", str(self.model), "--bind", self.endpoint, *self.args])
        await_answer(self.endpoint, process, "prm serve", self.log, ready_timeout, self.secure)
        return self


class Proxy(PrmProcess):
    """A ``prm proxy`` process: clients on ``endpoint`` (front), workers on ``back``."""

    role = "proxy"

    def __init__(self, log_dir: Path, args: Iterable[str] = (), front_port: int | None = None,
                 back_port: int | None = None, secure: Secure | None = None) -> None:
        self.args = list(args)
        self.secure = secure
        self.front_port = front_port if front_port is not None else free_port()
        self.back_port = back_port if back_port is not None else free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.front_port}"
        self.back = f"tcp://127.0.0.1:{self.back_port}"
        super().__init__(log_dir, str(self.front_port))

    def start(self, ready_timeout: float = 60.0) -> Proxy:
        process = self.launch(["--front", self.endpoint, "--back", self.back, *self.args])
        await_answer(self.endpoint, process, "prm proxy", self.log, ready_timeout, self.secure)
        return self


class Worker(PrmProcess):
    """A ``prm serve --connect`` worker of a proxy. It binds nothing: whether it joined shows in
    the proxy's pool (``Pool.wait_for``)."""

    role = "serve"

    def __init__(self, model: Path, log_dir: Path, back: str, args: Iterable[str] = ()) -> None:
        self.model = model
        self.back = back
        self.args = list(args)
        super().__init__(log_dir, "worker")

    def start(self) -> Worker:
        self.launch(["--model", str(self.model), "--connect", self.back, *self.args])
        return self


class Pool:
    """A proxy and its workers, all with the same heartbeat, torn down together."""

    def __init__(self, model: Path, log_dir: Path, schemas: Schemas, heartbeat_ms: float = HEARTBEAT_MS,
                 liveness: int = LIVENESS, proxy_args: Iterable[str] = (), worker_args: Iterable[str] = (),
                 secure: Secure | None = None) -> None:
        """``secure``: the CURVE keys of the harness's own requests to a proxy that requires them."""
        self.model = model
        self.log_dir = log_dir
        self.schemas = schemas
        self.heartbeat_ms = heartbeat_ms
        self.liveness = liveness
        self.proxy_args = [*proxy_args, "--heartbeat-ms", str(heartbeat_ms), "--liveness", str(liveness)]
        # One compute thread per worker, as PROTOCOL.md advises for several workers on one host.
        self.worker_args = [*worker_args, "--heartbeat-ms", str(heartbeat_ms), "--liveness", str(liveness), "--threads", "1"]
        self.secure = secure
        self.proxy = Proxy(log_dir, self.proxy_args, secure=secure)
        self.proxies = [self.proxy]
        self.workers: list[Worker] = []

    @property
    def endpoint(self) -> str:
        return self.proxy.endpoint

    @property
    def expiry(self) -> float:
        """Seconds of silence after which either side takes the other for dead."""
        return self.heartbeat_ms * self.liveness / 1000

    def start(self, workers: int) -> Pool:
        self.proxy.start()
        for _ in range(workers):
            self.add_worker()
        self.wait_for(lambda pool: pool["workers"] == workers, f"{workers} workers in the pool")
        return self

    def add_worker(self, args: Iterable[str] = ()) -> Worker:
        worker = Worker(self.model, self.log_dir, self.proxy.back, [*self.worker_args, *args]).start()
        self.workers.append(worker)
        return worker

    def restart_proxy(self) -> Proxy:
        """A new proxy process on the same ports (the old one must have exited)."""
        assert not self.proxy.running
        self.proxy = Proxy(self.log_dir, self.proxy_args, self.proxy.front_port, self.proxy.back_port, self.secure).start()
        self.proxies.append(self.proxy)
        return self.proxy

    def call(self, op: str) -> dict[str, Any]:
        """``health``, ``info`` or ``metrics`` through the proxy, schema-checked."""
        with Wire(self.endpoint, self.schemas, secure=self.secure) as wire:
            return wire.call({"v": 1, "id": op, "op": op}, timeout=10).body

    def wait_for(self, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60.0) -> dict[str, Any]:
        """Polls ``health`` until ``condition(pool)`` holds; returns that ``pool``, or fails the test."""
        deadline = time.monotonic() + timeout
        pool: dict[str, Any] = {}
        while time.monotonic() < deadline:
            pool = self.call("health")["pool"]
            if condition(pool):
                return pool
            for worker in self.workers:  # a worker that fails to start would be waited for in vain
                status = worker.process.poll() if worker.process is not None else None
                if status not in (None, 0, -signal.SIGKILL):
                    pytest.fail(f"a worker exited with {status}:\n{worker.log()}")
            time.sleep(0.02)
        logs = "\n".join(f"--- worker {n}:\n{w.log()}" for n, w in enumerate(self.workers))
        pytest.fail(f"not {what} within {timeout} s; pool {pool}\n--- proxy:\n{self.proxy.log()}\n{logs}")

    def close(self) -> list[str]:
        """Stops every process still running (workers first); returns the unclean exits."""
        failures = []
        for process in [*self.workers, *self.proxies]:
            if process.running:
                status = process.stop()
                if status != 0:
                    failures.append(f"prm {process.role} {process.log_path.name} exited {status}:\n{process.log()}")
        return failures


def prm_score(model: Path, requests: Sequence[Mapping[str, Any]], work_dir: Path) -> list[dict[str, Any]]:
    """In-process scores from ``prm score --input``: per request, ``scores`` by candidate index,
    ``known_user``, ``truncated`` and ``order`` (best first)."""
    path = work_dir / f"score-input-{time.monotonic_ns()}.jsonl"
    path.write_text("".join(json.dumps(request, ensure_ascii=False) + "\n" for request in requests), encoding="utf-8")
    run = subprocess.run([str(PRM), "score", "--model", str(model), "--input", str(path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"prm score failed ({run.returncode}):\n{run.stderr}"
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(lines) == len(requests), f"prm score printed {len(lines)} lines for {len(requests)} requests"
    results = []
    for request, line in zip(requests, lines):
        scores = [0.0] * len(request["candidates"])
        for entry in line["ranking"]:
            scores[entry["index"]] = entry["score"]
        results.append({"scores": scores, "known_user": line["known_user"], "truncated": line["truncated"],
                        "order": [entry["index"] for entry in line["ranking"]]})
    return results


def load_dialogues(limit: int = 200) -> list[dict[str, Any]]:
    """Rows of the built-in dev split: real prompts with two replies each."""
    rows = []
    with open(DATA / "dev.jsonl", encoding="utf-8") as lines:
        for line in lines:
            rows.append(json.loads(line))
            if len(rows) == limit:
                break
    return rows


def assert_close(got: Sequence[float | None], want: Sequence[float | None], tolerance: float, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} scores, expected {len(want)}"
    for index, (a, b) in enumerate(zip(got, want)):
        assert a is not None and b is not None, f"{what}[{index}]: null score"
        assert abs(a - b) <= tolerance, f"{what}[{index}]: {a} vs {b} (|diff| {abs(a - b):.3g} > {tolerance})"
