"""Text-to-speech interface.

An engine turns one piece of text into a stream of int16 mono chunks at
``sample_rate_hz``. Streams are async generators: the consumer cancels by stopping
iteration (or cancelling its task), and engines do no work ahead of consumption.

A reply is spoken in pieces (see :mod:`core.conversation.chunker`); ``previous_text`` is what
the agent has already said in this reply, so an engine that can use it (ElevenLabs'
``previous_text``) keeps the intonation flowing across pieces. Engines that cannot
ignore it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from core.speech.audio import Int16Array


class TTSError(RuntimeError):
    """Synthesis failed; the message says why."""


class TTSEngine(Protocol):
    name: str
    sample_rate_hz: int

    def stream(self, text: str, previous_text: str = "") -> AsyncIterator[Int16Array]: ...
