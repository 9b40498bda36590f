"""Deepgram's failures in our vocabulary: the SDK's and websockets' exceptions stop here."""

from __future__ import annotations

import json
from typing import Any

from core.resilience.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after
from core.speech.stt import STTError

PROVIDER = "deepgram"
# Websocket close codes Deepgram uses: 1008 bad audio/parameters, 1011 server-side error.
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
ERROR_CLOSE_CODES = frozenset({CLOSE_POLICY, CLOSE_INTERNAL})


class DeepgramError(ProviderError, STTError):
    """A Deepgram failure: a :class:`ProviderError` the session also handles as an STT error."""

    def __init__(self, kind: ErrorKind, message: str, **kwargs: Any):
        super().__init__(PROVIDER, kind, message, **kwargs)


def translate_error(exc: BaseException) -> DeepgramError:
    """Our vocabulary for an SDK/websocket exception (the SDK's own types stay here)."""
    if isinstance(exc, DeepgramError):
        return exc
    if isinstance(exc, ProviderError):
        return DeepgramError(exc.kind, str(exc), retry_after_s=exc.retry_after_s, status=exc.status)
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

    status = getattr(exc, "status_code", None)  # deepgram.core.api_error.ApiError
    if isinstance(exc, InvalidStatus) or status is not None:
        # The SDK re-raises a failed handshake as ApiError, dropping the response headers
        # (Retry-After); the websockets exception it replaced still has them.
        cause = exc if isinstance(exc, InvalidStatus) else exc.__context__
        response = getattr(cause, "response", None)
        if response is not None:
            status = response.status_code
        body = bytes(getattr(response, "body", b"") or b"").decode("utf-8", "replace")
        header = response.headers.get("Retry-After") if response is not None else None
        kind = kind_from_status(int(status or 0), body)
        return DeepgramError(
            kind,
            f"handshake refused with HTTP {status}: {body[:200]}",
            retry_after_s=parse_retry_after(header),
            status=int(status or 0),
        )
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else None
        reason = exc.rcvd.reason if exc.rcvd is not None else "no close frame"
        return close_error(code, reason)
    if isinstance(exc, json.JSONDecodeError):
        return DeepgramError(ErrorKind.MALFORMED, f"unparseable message: {exc}")
    if isinstance(exc, TimeoutError):
        return DeepgramError(ErrorKind.TIMEOUT, f"handshake timed out: {exc}")
    if isinstance(exc, InvalidHandshake | OSError):
        return DeepgramError(ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}")
    return DeepgramError(ErrorKind.CONNECTION, f"unexpected {type(exc).__name__}: {exc}")


def close_error(code: int | None, reason: str) -> DeepgramError:
    """The error for a stream Deepgram (or the network) closed with ``code``."""
    kind = {CLOSE_POLICY: ErrorKind.BAD_REQUEST, CLOSE_INTERNAL: ErrorKind.SERVER}.get(
        code or 0, ErrorKind.CONNECTION
    )
    return DeepgramError(kind, f"stream closed ({code}: {reason})", status=code)
