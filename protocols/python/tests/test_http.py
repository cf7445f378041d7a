"""``--http``: the HTTP front door of ``prm serve`` and ``prm proxy``, through real processes and
the standard library's HTTP client only. The v1 endpoints must give the scores of in-process
``prm score``; OpenRLHF's and slime's requests are sent exactly as those projects send them;
errors carry their documented status and v1 code; tokens, TLS and SIGTERM's drain are real."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import Pool, Schemas, Server, assert_close, free_port, prm_score

PROMPT = "Human: Any tips for sleeping?\n\nAssistant:"
REPLIES = ["Keep a regular schedule.", "Avoid screens before bed, and keep the room cool and dark.", "Sleep is overrated."]
TOLERANCE = 1e-5


def request(address: str, method: str, path: str, body: Any = None, token: str | None = None,
            headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    """One HTTP request; the reply's status and its JSON body (text when it is not JSON)."""
    host, port = address.rsplit(":", 1)
    connection = (http.client.HTTPSConnection(host, int(port), timeout=60, context=context) if context
                  else http.client.HTTPConnection(host, int(port), timeout=60))
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    payload = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    if payload is not None:
        sent.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        text = response.read().decode("utf-8")
    finally:
        connection.close()
    try:
        return response.status, json.loads(text)
    except json.JSONDecodeError:
        return response.status, text


def post(address: str, path: str, body: Any, **options: Any) -> tuple[int, Any]:
    return request(address, "POST", path, body, **options)


def get(address: str, path: str, **options: Any) -> tuple[int, Any]:
    return request(address, "GET", path, **options)


@pytest.fixture(scope="module")
def http_server(start_server: Callable[..., Server]) -> tuple[Server, str]:
    address = f"127.0.0.1:{free_port()}"
    # A short idle timeout for the slow client; a batch wait for the concurrent clients to share.
    return start_server("--http", address, "--http-timeout", "2", "--max-wait-ms", "20"), address


def reference(checkpoint: Path, work_dir: Path, user: str | None, prompt: str, replies: list[str]) -> dict[str, Any]:
    """In-process ``prm score`` of one rank request: the reference of every HTTP score here."""
    return prm_score(checkpoint, [{"user_id": user, "prompt": prompt, "candidates": replies}], work_dir)[0]


def test_v1_endpoints_equal_in_process_scores(http_server: tuple[Server, str], schemas: Schemas, checkpoint: Path,
                                             work_dir: Path, user_ids: list[str]) -> None:
    _, address = http_server
    user = user_ids[0]
    want = reference(checkpoint, work_dir, user, PROMPT, REPLIES)
    status, rank = post(address, "/v1/rank", {"v": 1, "id": "r", "user_id": user, "prompt": PROMPT, "candidates": REPLIES})
    assert status == 200, rank
    schemas.check_reply(rank, "rank")
    assert_close(rank["scores"], want["scores"], TOLERANCE, "/v1/rank")
    assert rank["order"] == want["order"] and rank["known_user"] is True
    items = [{"user_id": user, "prompt": PROMPT, "response": reply} for reply in REPLIES]
    status, score = post(address, "/v1/score", {"v": 1, "id": 2, "op": "score", "items": items})
    assert status == 200, score
    schemas.check_reply(score, "score")
    assert_close(score["scores"], want["scores"], TOLERANCE, "/v1/score")
    for path, op in (("/v1/info", "info"), ("/v1/metrics", "metrics")):
        status, body = get(address, path)
        assert status == 200, body
        schemas.check_reply(body, op)
    assert get(address, "/health/live") == (200, {"live": True})
    status, ready = get(address, "/health/ready")
    assert status == 200 and ready["status"] == "serving", ready
    status, text = get(address, "/metrics")
    assert status == 200 and 'prm_http_requests_total{listener="http",endpoint="/v1/rank",status="200"}' in text, text


def test_openrlhf_get_reward(http_server: tuple[Server, str], checkpoint: Path, work_dir: Path, user_ids: list[str]) -> None:
    """The request OpenRLHF's ``remote_rm_fn`` (openrlhf/utils/remote_rm_utils.py) posts:
    ``requests.post(url, json={"query": queries, "prompts": prompts, "labels": labels})``, one
    query per sample (prompt + response); its reference server's reply shape
    (openrlhf/cli/serve_rm.py: rewards, scores, extra_logs)."""
    _, address = http_server
    user = user_ids[1]
    queries = [PROMPT + reply for reply in REPLIES]
    status, body = post(address, "/get_reward", {"query": queries, "prompts": [PROMPT] * 3, "labels": [user, {"user_id": user}, user]},
                        headers={"Content-Type": "application/json"})
    assert status == 200, body
    want = reference(checkpoint, work_dir, user, PROMPT, REPLIES)
    assert_close(body["rewards"], want["scores"], TOLERANCE, "rewards")
    assert_close(body["scores"], want["scores"], TOLERANCE, "scores")
    assert body["extra_logs"] == {"known_user": [1, 1, 1]}
    # Without labels every sample is the generic user's.
    status, generic = post(address, "/get_reward", {"query": queries[:1], "prompts": [PROMPT]})
    assert status == 200 and generic["extra_logs"] == {"known_user": [0]}, generic
    status, refused = post(address, "/get_reward", {"query": queries, "prompts": [PROMPT, "Human: other", PROMPT]})
    assert status == 400 and refused["error"]["code"] == "bad_request", refused
    assert "query[1] does not start with prompts[1]" in refused["error"]["message"], refused


def test_slime_reward(http_server: tuple[Server, str], checkpoint: Path, work_dir: Path, user_ids: list[str]) -> None:
    """The request slime's ``remote_rm`` (slime/rollout/rm_hub/__init__.py) posts per sample:
    ``session.post(args.rm_url, json={"prompt": sample.prompt, "response": sample.response,
    "label": sample.label})``, taking the JSON reply (``--reward-key reward``)."""
    _, address = http_server
    user = user_ids[2]
    want = reference(checkpoint, work_dir, user, PROMPT, REPLIES[:1])
    status, body = post(address, "/reward", {"prompt": PROMPT, "response": REPLIES[0], "label": user})
    assert status == 200, body
    assert_close([body["reward"]], want["scores"], TOLERANCE, "reward")
    assert body["user_id"] == user and body["known_user"] is True
    status, stranger = post(address, "/reward", {"prompt": PROMPT, "response": REPLIES[0], "label": {"user_id": "nobody-known"}})
    assert status == 200 and stranger["known_user"] is False and stranger["user_id"] == "nobody-known", stranger


def test_rerank(http_server: tuple[Server, str], checkpoint: Path, work_dir: Path, user_ids: list[str]) -> None:
    _, address = http_server
    user = user_ids[0]
    want = reference(checkpoint, work_dir, user, PROMPT, REPLIES)
    status, ranked = post(address, "/rerank", {"query": PROMPT, "texts": REPLIES, "user_id": user})
    assert status == 200, ranked
    assert [entry["index"] for entry in ranked] == want["order"]
    assert_close([entry["score"] for entry in ranked], [want["scores"][i] for i in want["order"]], TOLERANCE, "rerank")


def test_bad_requests_get_their_status_and_code(http_server: tuple[Server, str]) -> None:
    _, address = http_server
    cases = [
        ("/v1/rank", b"{not json", 400, "bad_json"),
        ("/v1/rank", {"v": 1, "id": 1, "prompt": 3, "candidates": ["a"]}, 400, "bad_request"),
        ("/v1/rank", {"v": 1, "id": 1, "op": "score", "items": []}, 400, "bad_request"),
        ("/reward", {"prompt": "p"}, 400, "bad_request"),
        ("/rerank", {"query": "q", "texts": "not a list"}, 400, "bad_request"),
        ("/nowhere", {}, 404, "bad_request"),
    ]
    for path, body, status, code in cases:
        got, reply = post(address, path, body)
        assert (got, reply["error"]["code"]) == (status, code), (path, body, reply)
    got, reply = get(address, "/v1/rank")
    assert got == 405 and reply["error"]["code"] == "bad_request", reply
    # A Content-Length over the limit is refused before the body is read: memory stays put.
    server, _ = http_server
    rss_before = server.rss_bytes()
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/v1/score")
    connection.putheader("Content-Length", str(100 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["code"] == "too_large"
    connection.close()
    assert server.rss_bytes() - rss_before < 50 * 1024 * 1024, "the 100 MB body was read into memory"
    assert get(address, "/health/live")[0] == 200, "still serving"


def test_slow_client_is_cut_off_while_others_are_served(http_server: tuple[Server, str]) -> None:
    _, address = http_server
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(b"POST /reward HTTP/1.1\r\nHost: prm\r\nContent-Le")
        started = time.monotonic()
        for _ in range(3):
            assert post(address, "/reward", {"prompt": PROMPT, "response": REPLIES[0]})[0] == 200
        assert slow.recv(1024) == b"", "the slow client got bytes instead of a closed connection"
        assert time.monotonic() - started < 8, "the 2 s idle timeout did not close the connection"


def test_concurrent_one_sample_clients_share_batches(http_server: tuple[Server, str]) -> None:
    """64 clients, one sample each, all at once, as an RL framework's reward workers send them."""
    _, address = http_server
    before = get(address, "/v1/metrics")[1]["batches"]
    statuses: list[int] = []
    barrier = threading.Barrier(64)

    def one(n: int) -> None:
        barrier.wait()
        statuses.append(post(address, "/reward", {"prompt": PROMPT, "response": f"reply {n}"})[0])

    threads = [threading.Thread(target=one, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 64, statuses
    after = get(address, "/v1/metrics")[1]["batches"]
    assert after["requests"] - before["requests"] == 64
    assert after["count"] - before["count"] < 32, (before, after)


def test_tokens_are_required(start_server: Callable[..., Server], work_dir: Path) -> None:
    tokens = work_dir / "http-tokens"
    tokens.write_text("alpha-token\nbeta-token\n", encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    start_server("--http", address, "--http-token-file", str(tokens))
    body = {"prompt": PROMPT, "response": REPLIES[0]}
    for token in (None, "wrong", "alpha"):
        status, reply = post(address, "/reward", body, token=token)
        assert status == 401 and "bearer token" in reply["error"]["message"], (token, reply)
    assert post(address, "/reward", body, token="beta-token")[0] == 200
    assert get(address, "/health/live")[0] == 200


def test_tls(start_server: Callable[..., Server], work_dir: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate (Debian's openssl package)"
    cert, key = work_dir / "tls.pem", work_dir / "tls.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    address = f"127.0.0.1:{free_port()}"
    start_server("--http", address, "--tls-cert", str(cert), "--tls-key", str(key))
    context = ssl.create_default_context(cafile=str(cert))
    status, body = post(address, "/reward", {"prompt": PROMPT, "response": REPLIES[0]}, context=context)
    assert status == 200 and isinstance(body["reward"], float), body
    with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate
        get(address, "/health/live", context=ssl.create_default_context())


def test_proxy_http(start_pool: Callable[..., Pool], checkpoint: Path, work_dir: Path, user_ids: list[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    pool = start_pool(1, proxy_args=["--http", address])
    user = user_ids[0]
    want = reference(checkpoint, work_dir, user, PROMPT, REPLIES)
    status, rank = post(address, "/v1/rank", {"v": 1, "id": 1, "user_id": user, "prompt": PROMPT, "candidates": REPLIES})
    assert status == 200, rank
    assert_close(rank["scores"], want["scores"], TOLERANCE, "proxy /v1/rank")
    status, rewards = post(address, "/get_reward", {"query": [PROMPT + r for r in REPLIES], "prompts": [PROMPT] * 3, "labels": [user] * 3})
    assert status == 200, rewards
    assert_close(rewards["rewards"], want["scores"], TOLERANCE, "proxy /get_reward")
    assert get(address, "/health/ready")[0] == 200
    pool.workers[0].stop()
    pool.wait_for(lambda state: state["workers"] == 0, "the worker gone")
    status, ready = get(address, "/health/ready")
    assert status == 503 and ready["healthy"] is False, ready


def test_sigterm_drains_http(start_server: Callable[..., Server]) -> None:
    """A request waiting for its batch when SIGTERM arrives gets its reward; one sent during the
    drain is refused 503 shutting_down; the process exits 0."""
    address = f"127.0.0.1:{free_port()}"
    server = start_server("--http", address, "--max-wait-ms", "3000")
    answers: list[tuple[int, Any]] = []
    waiting = threading.Thread(target=lambda: answers.append(post(address, "/reward", {"prompt": PROMPT, "response": REPLIES[1]})))
    waiting.start()
    time.sleep(1.0)  # the request waits for its batch to fill (max wait 3 s)
    server.signal()
    time.sleep(0.2)
    status, late = post(address, "/reward", {"prompt": PROMPT, "response": REPLIES[2]})
    assert status == 503 and late["error"]["code"] == "shutting_down", late
    waiting.join(30)
    assert answers and answers[0][0] == 200 and "reward" in answers[0][1], answers
    assert server.wait(30) == 0, server.log()
