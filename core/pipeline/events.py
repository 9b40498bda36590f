"""What a voice session tells the rest of the product: its events and the snapshot the UI polls.

Listeners (the voice agent, the Live page) receive :data:`SessionEvent` s from the
session's thread; :class:`SessionSnapshot` is a copy taken under the session's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.store import SegmentRecord, UtteranceTiming

SessionState = Literal["idle", "listening", "stopping", "ended", "failed"]


@dataclass(frozen=True)
class SpeechStartedEvent:
    call_id: str
    t_ms: float


@dataclass(frozen=True)
class PartialEvent:
    call_id: str
    text: str
    t_start_ms: float


@dataclass(frozen=True)
class SettledEvent:
    """The caller is pausing and the recogniser has finalised every word so far, before
    the end of the utterance is decided (a recogniser with ``settled_text``: Deepgram, and the
    embedded neural recogniser's early final).

    Speculative: if the caller goes on, the utterance's :class:`FinalEvent` says more.
    The agent starts writing its reply on it, so the reply is under way when the
    end-of-utterance silence is over. Not stored.
    """

    call_id: str
    text: str
    t_start_ms: float


@dataclass(frozen=True)
class FinalEvent:
    call_id: str
    segment: SegmentRecord
    timing: UtteranceTiming
    persisted: bool


@dataclass(frozen=True)
class ErrorEvent:
    call_id: str
    message: str
    fatal: bool = False


SessionEvent = SpeechStartedEvent | PartialEvent | SettledEvent | FinalEvent | ErrorEvent


@dataclass(frozen=True)
class SessionSnapshot:
    """What the UI shows, copied out under a lock."""

    call_id: str | None
    state: SessionState
    partial: str
    in_speech: bool
    segments: tuple[SegmentRecord, ...]
    timings: tuple[UtteranceTiming, ...]
    errors: tuple[str, ...]
    level_dbfs: float
    frames_received: int
    frames_rejected: int
    backlog_ms: float
    stream_ms: float
    unsaved: int
