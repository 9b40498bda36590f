"""Text-to-speech interface.

An engine turns one piece of text into a stream of int16 mono chunks at
``sample_rate_hz``. Streams are async generators: the consumer cancels by stopping
iteration (or cancelling its task), and engines do no work ahead of consumption.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from core.audio import Int16Array


class TTSError(RuntimeError):
    """Synthesis failed; the message says why."""


class TTSEngine(Protocol):
    name: str
    sample_rate_hz: int

    def stream(self, text: str) -> AsyncIterator[Int16Array]: ...
