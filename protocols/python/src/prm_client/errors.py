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

    @property
    def transient(self) -> bool:
        """True when the request itself was fine (``overloaded``, ``deadline_exceeded``,
        ``shutting_down``): sending it again later may succeed."""
        return self.code in {code.value for code in TRANSIENT_CODES}


class PrmTimeoutError(PrmClientError, TimeoutError):
    """No reply came after the first attempt and every retry (each on a fresh socket)."""

    def __init__(self, endpoint: str, attempts: int, timeout: float, outstanding: int) -> None:
        super().__init__(f"no reply from {endpoint} after {attempts} attempt(s) of {timeout:g} s each "
                         f"({outstanding} request(s) unanswered)")
        self.endpoint = endpoint
        self.attempts = attempts
        self.timeout = timeout
        self.outstanding = outstanding


class PrmProtocolError(PrmClientError):
    """The server's reply is not a valid v1 reply (not JSON, not an object, missing members)."""
