"""CURVE keys (ZeroMQ's elliptic-curve security, RFC 26) for a client of a server or proxy that
runs with ``--curve-secret-key`` and ``--allow-keys``.

A key file holds one 40-character Z85 key on its first line: the files ``prm keygen NAME`` writes
(``NAME.pub``, ``NAME.key``) and the keys of pyzmq's :func:`zmq.curve_keypair` written to a file
are the same format, so either works here and with the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import zmq
from zmq.utils.z85 import Z85CHARS

#: A key as pyzmq gives it (bytes) or as read from a file (str).
Key = Union[str, bytes]
#: A key file's path.
PathLike = Union[str, "os.PathLike[str]"]

KEY_LENGTH = 40


def check_key(key: Key, what: str) -> str:
    """``key`` as a str, if it is 40 Z85 characters; ``ValueError`` naming ``what`` otherwise."""
    text = key.decode("ascii", errors="replace") if isinstance(key, bytes) else key
    if len(text) != KEY_LENGTH or not all(ord(char) < 128 and ord(char) in Z85CHARS for char in text):
        raise ValueError(f"{what}: expected a {KEY_LENGTH}-character Z85 CURVE key, got {text[:60]!r} ({len(text)} characters)")
    return text


def read_key(path: PathLike) -> str:
    """The key on the first line of a key file (``NAME.pub`` or ``NAME.key``)."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            first = file.readline()
    except OSError as error:
        raise ValueError(f"{os.fspath(path)}: cannot read the key file ({error.strerror})") from error
    return check_key(first.strip(), f"{os.fspath(path)}, line 1")


@dataclass(frozen=True)
class CurveKeys:
    """What a CURVE client needs: the server's (or proxy's) public key and its own key pair.

    The server admits the client only if ``public_key`` is on its allow-list (a ``.pub`` file in
    its ``--allow-keys`` folder); a refused client gets no reply at all (the handshake fails), so
    its calls end in :class:`prm_client.PrmTimeoutError`.
    """

    server_public_key: str
    public_key: str
    secret_key: str

    def __post_init__(self) -> None:
        for name in ("server_public_key", "public_key", "secret_key"):
            check_key(getattr(self, name), name)
        if zmq.curve_public(self.secret_key.encode("ascii")).decode("ascii") != self.public_key:
            raise ValueError("public_key is not the public half of secret_key")

    @classmethod
    def from_files(cls, server_public_key_file: PathLike, secret_key_file: PathLike) -> CurveKeys:
        """From the server's ``NAME.pub`` and the client's own ``NAME.key`` (its public key is
        derived from the secret one)."""
        secret = read_key(secret_key_file)
        public = zmq.curve_public(secret.encode("ascii")).decode("ascii")
        return cls(read_key(server_public_key_file), public, secret)

    @classmethod
    def from_keys(cls, server_public_key: Key, secret_key: Key) -> CurveKeys:
        """From keys in memory, e.g. ``zmq.curve_keypair()``'s secret half."""
        secret = check_key(secret_key, "secret_key")
        public = zmq.curve_public(secret.encode("ascii")).decode("ascii")
        return cls(check_key(server_public_key, "server_public_key"), public, secret)

    def apply(self, socket: zmq.Socket[Any]) -> None:
        """Makes ``socket`` a CURVE client (before it connects)."""
        socket.setsockopt(zmq.CURVE_SERVERKEY, self.server_public_key.encode("ascii"))
        socket.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key.encode("ascii"))
        socket.setsockopt(zmq.CURVE_SECRETKEY, self.secret_key.encode("ascii"))

    def __repr__(self) -> str:
        # The secret key stays out of logs and tracebacks.
        return f"CurveKeys(server_public_key={self.server_public_key!r}, public_key={self.public_key!r}, secret_key=...)"
