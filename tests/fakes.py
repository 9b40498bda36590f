"""Configurable fakes shared by every test (no inheritance needed: Protocols)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from core.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.stt import STTError, Transcript


class FakeSTT:
    """Returns scripted transcripts, one per utterance, in order.

    Args:
        transcripts: text for the 1st, 2nd, ... utterance (then "utterance N").
        error: raise STTError on ``finish`` (or on ``open`` if ``error_on_open``).
        delay_s: time ``finish`` takes.
    """

    name = "fake"

    def __init__(
        self,
        transcripts: Sequence[str] = (),
        error: str | None = None,
        delay_s: float = 0.0,
        error_on_open: bool = False,
    ):
        self.transcripts = list(transcripts)
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

    def finish(self) -> Transcript:
        if self._engine.delay_s:
            time.sleep(self._engine.delay_s)
        if self._engine.error:
            raise STTError(self._engine.error)
        self._engine.finished += 1
        audio_ms = self._samples * 1000 / PIPELINE_SAMPLE_RATE_HZ
        return Transcript(self._text(), 0.9, decode_ms=audio_ms * 0.05, audio_ms=audio_ms)

    def cancel(self) -> None:
        self._engine.cancelled += 1
