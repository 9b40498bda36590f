"""Speech-to-text interface.

An STT engine hands out one :class:`UtteranceStream` per utterance; the session feeds it
audio as the endpointer releases it, polls :meth:`UtteranceStream.partial` while the
caller speaks, and calls :meth:`UtteranceStream.finish` when the utterance ends,
telling it where the speech ended (ms into the utterance's audio; the rest is the
end-of-utterance silence). A recogniser that already holds final results up to there
can answer at once instead of flushing. Such a recogniser may also offer
``settled_text(speech_end_ms) -> str | None``: its final words while the caller pauses,
before the end of the utterance is decided (the voice agent starts its reply on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.speech.audio import Int16Array


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float | None = None
    decode_ms: float = 0.0  # CPU time spent decoding this utterance
    audio_ms: float = 0.0  # audio decoded


class UtteranceStream(Protocol):
    def accept(self, samples: Int16Array) -> None: ...
    def partial(self) -> str: ...
    def finish(self, speech_end_ms: float | None = None) -> Transcript: ...
    def cancel(self) -> None: ...


class STTEngine(Protocol):
    name: str

    def open(self) -> UtteranceStream: ...


class STTError(RuntimeError):
    """The recogniser failed; the utterance is lost but the session goes on."""
