"""Configurable fakes shared by every test (no inheritance needed: Protocols)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.speech.stt import STTError, Transcript


class FakeSTT:
    """Returns scripted transcripts, one per utterance, in order.

    Args:
        transcripts: text for the 1st, 2nd, ... utterance (then "utterance N").
        error: raise STTError on ``finish`` (or on ``open`` if ``error_on_open``).
        delay_s: time ``finish`` takes.
        settled: like Deepgram, offer ``settled_text`` in pauses: the utterance's own
            transcript (True), or these texts, one per utterance (the caller then goes
            on to say the transcript); False: no settled words.
    """

    name = "fake"

    def __init__(
        self,
        transcripts: Sequence[str] = (),
        error: str | None = None,
        delay_s: float = 0.0,
        error_on_open: bool = False,
        settled: bool | Sequence[str] = False,
    ):
        self.transcripts = list(transcripts)
        self.settled = settled
        self.speech_ends: list[float | None] = []  # what finish() was told, per utterance
        self.error = error
        self.delay_s = delay_s
        self.error_on_open = error_on_open
        self.opened = 0
        self.finished = 0
        self.cancelled = 0
        self.samples_accepted = 0

    def open(self) -> FakeStream:
        if self.error and self.error_on_open:
            raise STTError(self.error)
        self.opened += 1
        return FakeStream(self, self.opened - 1)


class FakeStream:
    def __init__(self, engine: FakeSTT, index: int):
        self._engine = engine
        self._index = index
        self._samples = 0

    def _text(self) -> str:
        t = self._engine.transcripts
        return t[self._index] if self._index < len(t) else f"utterance {self._index + 1}"

    def accept(self, samples: Int16Array) -> None:
        self._samples += samples.size
        self._engine.samples_accepted += samples.size

    def partial(self) -> str:
        words = self._text().split()
        return " ".join(words[: max(1, len(words) // 2)])

    def settled_text(self, speech_end_ms: float) -> str | None:
        settled = self._engine.settled
        if settled is True:
            return self._text()
        if settled and self._index < len(settled):
            return settled[self._index]
        return None

    def finish(self, speech_end_ms: float | None = None) -> Transcript:
        self._engine.speech_ends.append(speech_end_ms)
        if self._engine.delay_s:
            time.sleep(self._engine.delay_s)
        if self._engine.error:
            raise STTError(self._engine.error)
        self._engine.finished += 1
        audio_ms = self._samples * 1000 / PIPELINE_SAMPLE_RATE_HZ
        return Transcript(self._text(), 0.9, decode_ms=audio_ms * 0.05, audio_ms=audio_ms)

    def cancel(self) -> None:
        self._engine.cancelled += 1


class FakeConversation:
    def __init__(self) -> None:
        self.turns: list[tuple[str, str]] = []

    def add(self, speaker: str, text: str) -> None:
        self.turns.append((speaker, text))


class FakeResponder:
    """Streams ``reply`` word by word, ``delay_s`` between words; counts what it produced."""

    def __init__(self, reply: str = "Sure. I can help with that today.", delay_s: float = 0.0,
                 greeting: str = "Hello, how can I help?", error: str | None = None,
                 replies: list[str] | None = None):
        self.reply = reply
        self.replies = replies
        self.per_stream: list[int] = []
        self.delay_s = delay_s
        self._greeting = greeting
        self.error = error
        self.deltas_produced = 0
        self.calls = 0
        self.closed = 0

    def greeting(self) -> str:
        return self._greeting

    async def stream(self, conversation):
        import asyncio

        self.calls += 1
        index = len(self.per_stream)
        self.per_stream.append(0)
        reply = self.replies[index] if self.replies and index < len(self.replies) else self.reply
        try:
            if self.error:
                raise RuntimeError(self.error)
            for word in reply.split():
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                self.deltas_produced += 1
                self.per_stream[index] += 1
                yield word + " "
        finally:
            self.closed += 1


class FakeTTS:
    """``seconds_per_word`` of a tone per word, in 20 ms chunks at 16 kHz."""

    name = "fake-tts"
    sample_rate_hz = 16000

    def __init__(self, seconds_per_word: float = 0.2, first_chunk_delay_s: float = 0.0):
        self.seconds_per_word = seconds_per_word
        self.first_chunk_delay_s = first_chunk_delay_s
        self.chunks_produced = 0
        self.texts: list[str] = []
        self.previous_texts: list[str] = []

    async def stream(self, text: str, previous_text: str = ""):
        import asyncio

        import numpy as np

        self.texts.append(text)
        self.previous_texts.append(previous_text)
        if self.first_chunk_delay_s:
            await asyncio.sleep(self.first_chunk_delay_s)
        n = int(len(text.split()) * self.seconds_per_word * self.sample_rate_hz)
        chunk = 320
        for i in range(0, n, chunk):
            self.chunks_produced += 1
            yield (np.ones(min(chunk, n - i), np.int16) * 1000)
            await asyncio.sleep(0)


class FakeAudioOut:
    """Records pushes and clears with timestamps."""

    def __init__(self) -> None:
        import threading

        self.log: list[tuple[str, float, int]] = []
        self._lock = threading.Lock()

    def push(self, pcm) -> None:
        with self._lock:
            self.log.append(("push", time.monotonic(), int(pcm.size)))

    def clear(self) -> None:
        with self._lock:
            self.log.append(("clear", time.monotonic(), 0))

    @property
    def pushed_samples(self) -> int:
        return sum(n for kind, _, n in self.log if kind == "push")

    def pushes_after_last_clear(self) -> int:
        idx = max((i for i, e in enumerate(self.log) if e[0] == "clear"), default=-1)
        return sum(1 for e in self.log[idx + 1 :] if e[0] == "push")
