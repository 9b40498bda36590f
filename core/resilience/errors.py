"""The error vocabulary every provider adapter speaks.

An adapter catches its SDK's exceptions and raises :class:`ProviderError` with one of the
:class:`ErrorKind` categories. Whether to retry, open a circuit breaker or fall back to the
next provider is decided from the category alone:

========== ========= ==========================================================
kind       retryable  typical cause
========== ========= ==========================================================
auth       no        bad or revoked key (401/403)
rate_limit yes       429; honour ``retry_after_s`` when the vendor sends it
quota      no        credits or monthly quota exhausted (402, 429 "quota")
timeout    yes       no answer within the stage's budget
connection yes       refused, reset, DNS, TLS, a stream dropped mid-way
server     yes       5xx from the vendor
bad_request no       400/404/422: our request is wrong; retrying cannot help
malformed  yes       the vendor answered with something we cannot parse
========== ========= ==========================================================
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    QUOTA = "quota"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    SERVER = "server"
    BAD_REQUEST = "bad_request"
    MALFORMED = "malformed"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {ErrorKind.RATE_LIMIT, ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.SERVER, ErrorKind.MALFORMED}
)


class ProviderError(RuntimeError):
    """A provider call failed; ``kind`` says whether trying again can help.

    Attributes:
        provider: the adapter's name (``"openai"``, ``"deepgram"`` ...).
        kind: the category (see the module docstring).
        retry_after_s: the vendor's own hint (``Retry-After``), if it sent one.
        status: the HTTP status or websocket close code, when there was one.
    """

    def __init__(
        self,
        provider: str,
        kind: ErrorKind,
        message: str,
        *,
        retry_after_s: float | None = None,
        status: int | None = None,
    ):
        super().__init__(f"{provider}: {kind.value}: {message}")
        self.provider = provider
        self.kind = kind
        self.retry_after_s = retry_after_s
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.kind.retryable


def kind_from_status(status: int, body: str = "") -> ErrorKind:
    """The category of an HTTP error status (``body`` tells quota from rate limit)."""
    text = body.lower()
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 402 or (status == 429 and ("quota" in text or "credit" in text or "billing" in text)):
        return ErrorKind.QUOTA
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status in (408, 504):
        return ErrorKind.TIMEOUT
    if status >= 500:
        return ErrorKind.SERVER
    return ErrorKind.BAD_REQUEST


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form; dates are ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
