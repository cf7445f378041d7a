"""What a call can raise: an error reply, no reply at all, or a reply that breaks the protocol."""

from __future__ import annotations

from .protocol import TRANSIENT_CODES, RequestId


class PrmClientError(Exception):
    """Base of every error this package raises."""


class PrmError(PrmClientError):
    """The server answered with an error reply.

    ``code`` is the protocol's stable code (one of :class:`prm_client.ErrorCode`'s values; a newer
    server may add codes, so it is kept as a plain string), ``message`` the server's explanation
    (it names the offending field), ``request_id`` the id of the request it answered (``None``
    when the server could not read it).
    """

    def __init__(self, code: str, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id

    def __reduce__(self) -> tuple[type[PrmError], tuple[str, str, RequestId | None]]:
        # Rebuilt from its fields, so that it crosses a process boundary (a worker's error).
        return type(self), (self.code, self.message, self.request_id)

    @property
    def transient(self) -> bool:
        """True when the request itself was fine (``overloaded``, ``deadline_exceeded``,
        ``shutting_down``): sending it again later may succeed."""
        return self.code in {code.value for code in TRANSIENT_CODES}


class PrmTimeoutError(PrmClientError, TimeoutError):
    """The server showed no sign of life (no reply, no healthy answer to a liveness ping) for
    ``timeout`` seconds, on the first attempt and on every retry (each on a fresh socket)."""

    def __init__(self, endpoint: str, attempts: int, timeout: float, outstanding: int, detail: str = "") -> None:
        reason = f"; {detail}" if detail else ""
        super().__init__(f"no reply from {endpoint} after {attempts} attempt(s) of {timeout:g} s each "
                         f"({attempts * timeout:g} s in all, {outstanding} request(s) unanswered){reason}: "
                         f"is prm serve running and reachable there?")
        self.endpoint = endpoint
        self.attempts = attempts
        self.timeout = timeout
        self.outstanding = outstanding
        self.detail = detail

    def __reduce__(self) -> tuple[type[PrmTimeoutError], tuple[str, int, float, int, str]]:
        return type(self), (self.endpoint, self.attempts, self.timeout, self.outstanding, self.detail)


class PrmProtocolError(PrmClientError):
    """The server's reply is not a valid v1 reply (not JSON, not an object, missing members)."""
