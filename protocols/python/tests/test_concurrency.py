"""Eight peers pipelining at once: each gets every reply exactly once, with its own id and the
scores of its own request."""

from __future__ import annotations

import collections
import json
import threading
from pathlib import Path
from typing import Any

import zmq

from harness import Schemas, Server, assert_close, parse_reply, prm_score

CLIENTS = 8
REQUESTS_PER_CLIENT = 30
PROMPT = "Human: Can you recommend a book for a long train ride?\n\nAssistant:"


def candidate_pool(dialogues: list[dict[str, Any]]) -> list[str]:
    return [row["chosen"][:200] for row in dialogues[10:22]]


def test_eight_pipelining_clients(server: Server, schemas: Schemas, checkpoint: Path, work_dir: Path,
                                  dialogues: list[dict[str, Any]], user_ids: list[str]) -> None:
    pool = candidate_pool(dialogues)
    users = [*user_ids[:5], "stranger-1", "stranger-2"]
    reference = prm_score(checkpoint, [{"user_id": user, "prompt": PROMPT, "candidates": pool} for user in users], work_dir)
    expected = {(user, text): reference[u]["scores"][c] for u, user in enumerate(users) for c, text in enumerate(pool)}

    def requests_of(client: int) -> dict[Any, dict[str, Any]]:
        requests = {}
        for number in range(REQUESTS_PER_CLIENT):
            # Half the clients use string ids, half numbers; ids of different clients overlap on
            # purpose (the server must route by peer, not by id).
            request_id: Any = f"req-{number}" if client % 2 else number
            start = (client * 7 + number) % len(pool)
            candidates = [pool[(start + k) % len(pool)] for k in range(2 + number % 4)]
            requests[request_id] = {"v": 1, "id": request_id, "op": "rank", "user_id": users[(client + number) % len(users)],
                                    "prompt": PROMPT, "candidates": candidates}
        return requests

    barrier = threading.Barrier(CLIENTS)
    replies: dict[int, list[dict[str, Any]]] = {}
    failures: list[str] = []

    def run(client: int, requests: dict[Any, dict[str, Any]]) -> None:
        socket = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(server.endpoint)
        got: list[dict[str, Any]] = []
        try:
            barrier.wait(timeout=60)
            for body in requests.values():  # every request in flight before the first reply is read
                socket.send_multipart([b"", json.dumps(body).encode()])
            while len(got) < len(requests):
                if not socket.poll(120_000, zmq.POLLIN):
                    failures.append(f"client {client}: only {len(got)} of {len(requests)} replies")
                    return
                frames = socket.recv_multipart()
                assert frames[0] == b"" and len(frames) == 2, frames
                got.append(parse_reply(frames, schemas, "rank").body)
            if socket.poll(300, zmq.POLLIN):  # nothing more may come: no duplicates
                failures.append(f"client {client}: an extra reply {socket.recv_multipart()}")
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(f"client {client}: {error!r}")
        finally:
            replies[client] = got
            socket.close(linger=0)

    all_requests = {client: requests_of(client) for client in range(CLIENTS)}
    threads = [threading.Thread(target=run, args=(client, all_requests[client])) for client in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a client thread hung"
    assert not failures, failures

    for client, requests in all_requests.items():
        counts = collections.Counter(reply["id"] for reply in replies[client])
        assert counts == collections.Counter(requests.keys()), f"client {client}: ids {counts}"
        for reply in replies[client]:
            assert reply["ok"], reply
            request = requests[reply["id"]]
            want = [expected[(request["user_id"], text)] for text in request["candidates"]]
            assert_close(reply["scores"], want, 1e-5, f"client {client} request {reply['id']}")
