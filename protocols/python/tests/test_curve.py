"""CURVE with a ZAP allow-list, on a server and on a proxy: a client without CURVE, with a wrong
server key, or with a key not on the allow-list gets nothing; an allowed client is served; a key
added to the allow-list is admitted after SIGHUP. Keys from ``prm keygen`` and from pyzmq's
``zmq.curve_keypair()`` are interchangeable, and the Python client takes either."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from harness import PRM, Pool, Schemas, Server, Wire
from prm_client import Client, CurveKeys, PrmTimeoutError, read_key

PROMPT = "Human: Any tips for sleeping?\n\nAssistant:"
CANDIDATES = ["Keep a regular schedule.", "Avoid screens before bed."]
#: How long a refused client waits before the test takes the silence as a refusal. A CURVE
#: handshake on loopback takes milliseconds; the allowed client is checked with the same wait.
REFUSED_AFTER = 1.5


def keygen(name: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PRM), "keygen", str(name), *extra], capture_output=True, text=True, timeout=60)


def pyzmq_pair(name: Path) -> None:
    """``zmq.curve_keypair()`` written to NAME.pub and NAME.key, one key per file and line."""
    public, secret = zmq.curve_keypair()
    name.with_suffix(".pub").write_bytes(public + b"\n")
    name.with_suffix(".key").write_bytes(secret + b"\n")


@dataclass
class Keys:
    """Key files: the server's made by pyzmq, alice's by ``prm keygen`` and carol's by pyzmq (both
    allowed), mallory's by ``prm keygen`` (not allowed)."""

    root: Path
    allowed: Path

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"

    def pub(self, name: str) -> Path:
        return self.root / f"{name}.pub"

    def client(self, name: str, server: str = "server") -> CurveKeys:
        return CurveKeys.from_files(self.pub(server), self.key(name))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("curve")
    allowed = root / "allowed"
    allowed.mkdir()
    pyzmq_pair(root / "server")
    pyzmq_pair(root / "carol")
    for name in ("alice", "mallory", "worker", "proxy"):
        made = keygen(root / name)
        assert made.returncode == 0, made.stderr
    for name in ("alice", "carol", "worker"):
        shutil.copy(root / f"{name}.pub", allowed / f"{name}.pub")
    return Keys(root, allowed)


def served(endpoint: str, curve: CurveKeys | None) -> bool:
    """Whether a rank request gets an answer within REFUSED_AFTER seconds."""
    with Client(endpoint, timeout=REFUSED_AFTER, retries=0, curve=curve) as client:
        try:
            result = client.rank(PROMPT, CANDIDATES, user_id="worker-3")
        except PrmTimeoutError:
            return False
    assert len(result.scores) == 2
    return True


def test_keygen_writes_pyzmq_compatible_pairs(keys: Keys) -> None:
    public, secret = read_key(keys.pub("alice")), read_key(keys.key("alice"))
    assert zmq.curve_public(secret.encode()).decode() == public, "NAME.pub is not the public half of NAME.key"
    assert stat.S_IMODE(os.stat(keys.key("alice")).st_mode) == 0o600
    assert keys.key("alice").read_text().splitlines() == [secret]
    # No silent overwrite; --force replaces the pair.
    again = keygen(keys.root / "alice")
    assert again.returncode != 0 and "exists" in again.stderr, again
    assert read_key(keys.key("alice")) == secret
    assert keygen(keys.root / "again").returncode == 0
    replaced = read_key(keys.pub("again"))
    forced = keygen(keys.root / "again", "--force")
    assert forced.returncode == 0 and read_key(keys.pub("again")) != replaced, forced


def test_client_keys_are_checked(keys: Keys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    with pytest.raises(ValueError, match=r"bad\.key, line 1"):
        CurveKeys.from_files(keys.pub("server"), bad)
    with pytest.raises(ValueError, match="cannot read"):
        CurveKeys.from_files(tmp_path / "missing.pub", keys.key("alice"))
    alice = keys.client("alice")
    with pytest.raises(ValueError, match="public half"):
        CurveKeys(alice.server_public_key, read_key(keys.pub("carol")), alice.secret_key)
    public, secret = zmq.curve_keypair()
    assert CurveKeys.from_keys(read_key(keys.pub("server")), secret).public_key == public.decode()
    assert alice.secret_key not in repr(alice)


def test_curve_server_admits_only_allowed_keys(start_server: Callable[..., Server], keys: Keys, schemas: Schemas) -> None:
    server = start_server("--curve-secret-key", str(keys.key("server")), "--allow-keys", str(keys.allowed),
                          secure=keys.client("alice").apply)
    assert served(server.endpoint, keys.client("alice")), "an allowed client (prm keygen key) was not served"
    assert served(server.endpoint, keys.client("carol")), "an allowed client (pyzmq key) was not served"
    assert not served(server.endpoint, None), "a client without CURVE was served"
    assert not served(server.endpoint, keys.client("alice", server="mallory")), "a client with the wrong server key was served"
    assert not served(server.endpoint, keys.client("mallory")), "a key not on the allow-list was served"
    assert "key not on the allow-list" in server.full_log(), server.log()
    # The allow-list is re-read on SIGHUP.
    shutil.copy(keys.pub("mallory"), keys.allowed / "mallory.pub")
    try:
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while not served(server.endpoint, keys.client("mallory")):
            assert time.monotonic() < deadline, f"mallory not admitted after SIGHUP:\n{server.log()}"
    finally:
        (keys.allowed / "mallory.pub").unlink()
    # Still serving everyone it should, and it stays up through the refusals.
    with Wire(server.endpoint, schemas, secure=keys.client("carol").apply) as wire:
        assert wire.call({"v": 1, "id": 1, "op": "health"}).body["status"] == "serving"


def test_curve_proxy_admits_allowed_clients_and_workers(start_pool: Callable[..., Pool], keys: Keys) -> None:
    proxy_curve = ["--curve-secret-key", str(keys.key("proxy")), "--allow-keys", str(keys.allowed)]
    pool = start_pool(0, proxy_args=proxy_curve, secure=keys.client("alice", server="proxy").apply)
    pool.add_worker(["--curve-secret-key", str(keys.key("worker")), "--curve-server-key", str(keys.pub("proxy"))])
    pool.wait_for(lambda state: state["workers"] == 1, "the allowed worker in the pool")
    assert served(pool.endpoint, keys.client("alice", server="proxy"))
    assert not served(pool.endpoint, None)
    assert not served(pool.endpoint, keys.client("mallory", server="proxy"))
    # A worker whose key is not allowed never joins the pool.
    pool.add_worker(["--curve-secret-key", str(keys.key("mallory")), "--curve-server-key", str(keys.pub("proxy"))])
    time.sleep(3 * pool.expiry)
    assert pool.call("health")["pool"]["workers"] == 1
    # The refused worker's handshake is retried on ZeroMQ's reconnect timer: wait for its denial
    # to be logged (a fixed sleep made this fail once in a loaded run) rather than racing it.
    deadline = time.monotonic() + 20
    while pool.proxy.full_log().count("key not on the allow-list") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pool.proxy.full_log().count("key not on the allow-list") >= 2, pool.proxy.log()
    assert pool.call("health")["pool"]["workers"] == 1
