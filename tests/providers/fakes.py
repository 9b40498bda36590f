"""Configurable failing providers for resilience tests (Protocols: no inheritance)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from core.resilience.errors import ErrorKind, ProviderError
from core.speech.audio import Int16Array
from core.speech.stt import STTError, Transcript


class ScriptedResponder:
    """Streams ``reply`` word by word; fails as told.

    Args:
        name: provider name (breakers and events use it).
        reply: the reply text.
        fail_kind: raise a ProviderError of this kind...
        fail_after_words: ...after this many words (0: before the first).
        failures: only the first this many streams fail (None: all).
        retry_after_s: hint carried by the error.
    """

    def __init__(self, name: str, reply: str, fail_kind: ErrorKind | None = None, fail_after_words: int = 0,
                 failures: int | None = None, retry_after_s: float | None = None, word_delay_s: float = 0.0):
        self.name = name
        self.reply = reply
        self.fail_kind = fail_kind
        self.fail_after_words = fail_after_words
        self.failures = failures
        self.retry_after_s = retry_after_s
        self.word_delay_s = word_delay_s
        self.calls = 0

    def greeting(self) -> str:
        return f"Hello from {self.name}."

    async def stream(self, conversation: object) -> AsyncIterator[str]:
        self.calls += 1
        failing = self.fail_kind is not None and (self.failures is None or self.calls <= self.failures)
        for i, word in enumerate(self.reply.split()):
            if failing and i == self.fail_after_words:
                raise ProviderError(self.name, self.fail_kind, "scripted", retry_after_s=self.retry_after_s)
            if self.word_delay_s:
                await asyncio.sleep(self.word_delay_s)
            yield word + " "


class CountingSTT:
    """Transcribes an utterance as ``"<samples> samples"``: proves all audio arrived.

    Args:
        name: provider name.
        fail_on: ``"accept"``, ``"partial"``, ``"finish"`` or ``"open"`` to fail there.
        fail_kind: kind of the ProviderError raised (None: a plain STTError).
        fail_after_samples: ``accept`` fails once this many samples arrived.
        failures: how many failures before it works (None: always).
    """

    def __init__(self, name: str, fail_on: str | None = None, fail_kind: ErrorKind | None = ErrorKind.SERVER,
                 fail_after_samples: int = 0, failures: int | None = None):
        self.name = name
        self.fail_on = fail_on
        self.fail_kind = fail_kind
        self.fail_after_samples = fail_after_samples
        self.failures = failures
        self.failed = 0
        self.opened = 0
        self.finished = 0

    def should_fail(self, where: str) -> bool:
        if self.fail_on != where or (self.failures is not None and self.failed >= self.failures):
            return False
        self.failed += 1
        return True

    def error(self) -> Exception:
        if self.fail_kind is None:
            return STTError(f"{self.name} broke")
        return ProviderError(self.name, self.fail_kind, "scripted")

    def open(self) -> CountingStream:
        if self.should_fail("open"):
            raise self.error()
        self.opened += 1
        return CountingStream(self)


class CountingStream:
    def __init__(self, engine: CountingSTT):
        self.engine = engine
        self.samples = 0

    def accept(self, samples: Int16Array) -> None:
        self.samples += samples.size
        if self.samples > self.engine.fail_after_samples and self.engine.should_fail("accept"):
            raise self.engine.error()

    def partial(self) -> str:
        if self.engine.should_fail("partial"):
            raise self.engine.error()
        return f"{self.samples} so far"

    def finish(self, speech_end_ms: float | None = None) -> Transcript:
        if self.engine.should_fail("finish"):
            raise self.engine.error()
        self.engine.finished += 1
        return Transcript(f"{self.samples} samples", 0.9, audio_ms=self.samples / 16.0)

    def cancel(self) -> None:
        return None


class ToneTTS:
    """``seconds_per_char`` of tone per character at ``sample_rate_hz``, in 20 ms chunks; fails as told."""

    def __init__(self, name: str, sample_rate_hz: int = 16000, seconds_per_char: float = 0.01,
                 fail_kind: ErrorKind | None = None, fail_after_chunks: int = 0):
        self.name = name
        self.sample_rate_hz = sample_rate_hz
        self.seconds_per_char = seconds_per_char
        self.fail_kind = fail_kind
        self.fail_after_chunks = fail_after_chunks
        self.calls = 0

    async def stream(self, text: str, previous_text: str = "") -> AsyncIterator[Int16Array]:
        self.calls += 1
        total = int(len(text) * self.seconds_per_char * self.sample_rate_hz)
        chunk = self.sample_rate_hz // 50
        for i, start in enumerate(range(0, total, chunk)):
            if self.fail_kind is not None and i == self.fail_after_chunks:
                raise ProviderError(self.name, self.fail_kind, "scripted")
            n = min(chunk, total - start)
            yield (np.sin(np.arange(n) * 0.05) * 8000).astype(np.int16)
