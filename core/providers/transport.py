"""Errors every HTTP-based adapter shares: transport failures and unparseable answers.

SDKs wrap most transport failures in their own exceptions, but some let the HTTP
library's (``httpx``, or ``httpx2`` which newer SDKs use) or the socket's through,
notably while a stream is being read. This turns those into the error vocabulary.
"""

from __future__ import annotations

import json

from core.resilience.errors import ErrorKind, ProviderError

_TIMEOUT_NAMES = ("Timeout", "TimeoutError", "TimeoutException")


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or any(
        base.__name__ in _TIMEOUT_NAMES or base.__name__.endswith("Timeout") for base in type(exc).__mro__
    )


def _from_http_library(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "h11", "anyio"}


def transport_error(provider: str, exc: BaseException) -> ProviderError | None:
    """The vocabulary error for a transport or parsing failure, None if ``exc`` is neither."""
    if isinstance(exc, ProviderError):
        return exc
    if _is_timeout(exc):
        return ProviderError(provider, ErrorKind.TIMEOUT, f"timed out: {exc}")
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return ProviderError(provider, ErrorKind.MALFORMED, f"unparseable answer: {exc}")
    if isinstance(exc, (ConnectionError, OSError)) or _from_http_library(exc):
        return ProviderError(provider, ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}")
    return None


def malformed(provider: str, what: str) -> ProviderError:
    """The vendor answered, but not with what the request asked for."""
    return ProviderError(provider, ErrorKind.MALFORMED, what)
