"""Sockets lent to one call at a time: what makes a client safe to share between threads,
between coroutines, and across ``fork``.

A ZeroMQ socket must not be used by two threads at once, and a call must not read replies meant
for another. A call therefore borrows a socket for its whole duration and returns it when done.
We chose a pool over a socket per thread (``threading.local``): it serves threads and coroutines
alike (many awaits in one thread each need their own socket), a thread pool's short-lived threads
leave no sockets behind, and idle sockets are reused, so a steady load keeps a steady number of
connections (as many as calls run at once; at most ``keep`` stay open while idle).

After ``fork`` the child must not touch its parent's sockets: the pool notices the new process id
and starts empty (pyzmq's ``close`` is a no-op in a process that did not create the socket, and
:meth:`zmq.Context.instance` gives the child a context of its own).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import zmq

SocketT = TypeVar("SocketT", bound="zmq.Socket[Any]")

#: Idle sockets a pool keeps open for the next calls; more are closed when returned.
DEFAULT_KEEP = 16


class SocketPool(Generic[SocketT]):
    """Idle sockets to one endpoint, made by ``make`` on demand and lent to one call at a time."""

    def __init__(self, make: Callable[[], SocketT], keep: int = DEFAULT_KEEP) -> None:
        self._make = make
        self._keep = keep
        self._lock = threading.Lock()
        self._idle: list[SocketT] = []
        self._pid = os.getpid()
        #: Sockets replaced because the server was silent (Lazy Pirate), over the pool's life.
        self.replaced = 0

    def take(self) -> SocketT:
        """An idle socket, or a new one."""
        with self._lock:
            self._forget_after_fork()
            if self._idle:
                return self._idle.pop()
        return self._make()

    def give_back(self, socket: SocketT) -> None:
        """Returns a socket whose call finished with nothing in flight."""
        with self._lock:
            if os.getpid() == self._pid and len(self._idle) < self._keep:
                self._idle.append(socket)
                return
        socket.close(linger=0)

    def replace(self, socket: SocketT) -> SocketT:
        """Closes a socket that waited in vain and gives a fresh one in its place."""
        socket.close(linger=0)
        with self._lock:
            self.replaced += 1
        return self._make()

    def close(self) -> None:
        """Closes the idle sockets (those lent out are closed when given back, if over ``keep``)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for socket in idle:
            socket.close(linger=0)

    def _forget_after_fork(self) -> None:
        if os.getpid() != self._pid:
            self._idle = []
            self._pid = os.getpid()
