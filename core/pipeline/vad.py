"""Voice activity detection and end-of-utterance detection.

Two layers:

* a *frame classifier* says whether one 10 ms frame holds speech
  (:class:`WebRtcFrameClassifier` wraps the WebRTC VAD that pocketsphinx ships,
  gated by a level floor so very quiet hiss never counts and by a noise gate so
  steady noise of any level never counts);
* an :class:`Endpointer` turns those per-frame decisions into utterances using
  named thresholds (voiced time to open an utterance, silence that ends it, minimum
  speech, maximum length) and hands out the audio to decode, including a pre-roll so
  the first phoneme is not clipped.

The method was chosen by measurement: see ``docs/speech.md`` and ``python -m core.eval vad``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array, dbfs_rows

# 10 ms: the end of speech is known to within 10 ms, so the turn ends ~500 ms after it
# rather than 510-540 ms with 30 ms frames (measured: end-of-speech delay p50 523 -> 506 ms,
# no change in false alarms or missed speech; docs/speech.md). 1.0 ms of CPU per second.
FRAME_MS = 10
FRAME_SAMPLES = PIPELINE_SAMPLE_RATE_HZ * FRAME_MS // 1000


class FrameClassifier(Protocol):
    """Decides whether one ``FRAME_SAMPLES``-long 16 kHz int16 frame is speech.

    A classifier may also offer ``classify(frames)`` (rows of ``FRAME_SAMPLES``, in
    order) returning one decision per row, the same as ``is_speech`` on each; the
    endpointer uses it when present, so levels are computed for a chunk at once.
    """

    def is_speech(self, frame: Int16Array) -> bool: ...


class _RunningMin:
    """Minimum of the last ``window`` values, O(1) per value (monotonic queue)."""

    def __init__(self, window: int):
        self._window = window
        self._queue: deque[tuple[int, float]] = deque()
        self._n = 0

    def push(self, value: float) -> float:
        q = self._queue
        while q and q[-1][1] >= value:
            q.pop()
        q.append((self._n, value))
        self._n += 1
        if q[0][0] <= self._n - 1 - self._window:
            q.popleft()
        return q[0][1]


class WebRtcFrameClassifier:
    """WebRTC VAD (from pocketsphinx), gated by an absolute level floor and a noise gate.

    * ``floor_dbfs``: frames quieter than this are never speech.
    * ``snr_gate_db``: frames less than this far above the running noise floor (the
      quietest frame of the last ``gate_window_ms``) are never speech. Stationary
      noise (hum, fans, hiss) sits at its own floor, so it is rejected whatever its
      level, while speech, which always dips between syllables, passes. The WebRTC
      VAD alone calls 50 Hz hum speech and opens an utterance at the start of any
      steady noise while it adapts; see ``docs/speech.md``. None disables the gate.
    """

    def __init__(
        self,
        mode: int = 2,
        floor_dbfs: float = -50.0,
        snr_gate_db: float | None = 6.0,
        gate_window_ms: int = 3000,
    ):
        import pocketsphinx

        self._vad = pocketsphinx.Vad(mode, PIPELINE_SAMPLE_RATE_HZ, FRAME_MS / 1000)
        if self._vad.frame_bytes != FRAME_SAMPLES * 2:
            raise RuntimeError(f"unexpected VAD frame size {self._vad.frame_bytes}")
        self.mode = mode
        self._floor_dbfs = floor_dbfs
        self._gate_db = snr_gate_db
        self._noise_floor = _RunningMin(max(1, gate_window_ms // FRAME_MS))

    def is_speech(self, frame: Int16Array) -> bool:
        return self.classify(frame.reshape(1, -1))[0]

    def classify(self, frames: Int16Array) -> list[bool]:
        out = []
        vad, gate, floor = self._vad.is_speech, self._gate_db, self._floor_dbfs
        for frame, level in zip(frames.astype("<i2", copy=False), dbfs_rows(frames).tolist(), strict=True):
            # Every frame goes to the WebRTC VAD, so its noise model keeps adapting.
            voiced = bool(vad(frame.tobytes()))
            if gate is not None and level < self._noise_floor.push(level) + gate:
                out.append(False)
            else:
                out.append(voiced and level >= floor)
        return out


class EnergyFrameClassifier:
    """Level threshold only: the baseline the WebRTC VAD is measured against."""

    def __init__(self, threshold_dbfs: float = -40.0):
        self._threshold = threshold_dbfs

    def is_speech(self, frame: Int16Array) -> bool:
        return self.classify(frame.reshape(1, -1))[0]

    def classify(self, frames: Int16Array) -> list[bool]:
        return (dbfs_rows(frames) >= self._threshold).tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class EndpointConfig:
    """Thresholds for turning frame decisions into utterances (all in ms)."""

    speech_start_ms: int = 90
    end_of_utterance_silence_ms: int = 500
    min_speech_ms: int = 200
    max_utterance_ms: int = 15000
    pre_roll_ms: int = 300

    @classmethod
    def from_settings(cls, settings: object) -> EndpointConfig:
        return cls(
            speech_start_ms=settings.speech_start_ms,
            end_of_utterance_silence_ms=settings.end_of_utterance_silence_ms,
            min_speech_ms=settings.min_speech_ms,
            max_utterance_ms=settings.max_utterance_ms,
            pre_roll_ms=settings.pre_roll_ms,
        )


EndpointKind = Literal["start", "audio", "end", "abandon"]
EndReason = Literal["silence", "max_length", "stream_end"]


@dataclass(frozen=True)
class EndpointEvent:
    """What the endpointer saw.

    * ``start``: an utterance opened at ``t_ms`` (stream time, includes pre-roll).
    * ``audio``: samples belonging to the open utterance (pre-roll first).
    * ``end``: the utterance closed; ``t_ms`` is the end of the last voiced frame,
      ``speech_ms`` the voiced time inside it, ``reason`` why it closed.
    * ``abandon``: the open utterance had too little speech (a click, a cough).
    """

    kind: EndpointKind
    t_ms: float
    audio: Int16Array | None = None
    reason: EndReason | None = None
    speech_ms: float = 0.0


class Endpointer:
    """Streaming end-of-utterance detection over arbitrary-size chunks."""

    def __init__(self, config: EndpointConfig, classifier: FrameClassifier):
        self.config = config
        self._pending = np.zeros(0, np.int16)
        self._pos = 0  # samples consumed into frames so far
        # The frames that open an utterance are kept too, so the audio handed out
        # starts ``pre_roll_ms`` before the first voiced frame.
        self._pre_roll: deque[Int16Array] = deque(
            maxlen=max(1, -(-config.pre_roll_ms // FRAME_MS) + -(-config.speech_start_ms // FRAME_MS))
        )
        self._recent_voiced: deque[bool] = deque(
            maxlen=max(1, -(-config.speech_start_ms // FRAME_MS))
        )
        self.in_utterance = False
        self._utt_start_ms = 0.0
        self._last_voiced_end_ms = 0.0
        self._speech_ms = 0.0
        self._silence_ms = 0.0
        self._classify = getattr(classifier, "classify", None) or (
            lambda frames: [classifier.is_speech(f) for f in frames]
        )

    @property
    def stream_ms(self) -> float:
        """Stream time consumed so far."""
        return self._pos * 1000.0 / PIPELINE_SAMPLE_RATE_HZ

    @property
    def pause_ms(self) -> float:
        """Unvoiced time since the open utterance's last voiced frame (0 outside one)."""
        return self._silence_ms if self.in_utterance else 0.0

    @property
    def speech_end_ms(self) -> float:
        """Stream time at the end of the open utterance's last voiced frame."""
        return self._last_voiced_end_ms

    def process(self, samples: Int16Array) -> list[EndpointEvent]:
        """Feed 16 kHz mono int16 samples; return what happened, in order."""
        events: list[EndpointEvent] = []
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_frames = buf.size // FRAME_SAMPLES
        frames = buf[: n_frames * FRAME_SAMPLES].reshape(n_frames, FRAME_SAMPLES)
        # The frames of the open utterance since ``run`` go out as one audio event, when
        # the utterance closes or the chunk ends: the recogniser takes a chunk per
        # hand-over, not a call per 10 ms frame.
        run: int | None = 0 if self.in_utterance else None
        run_t = self.stream_ms
        for i, voiced in enumerate(self._classify(frames) if n_frames else ()):
            was_open = self.in_utterance
            before = len(events)
            self._frame(frames[i], bool(voiced), events)
            if was_open and not self.in_utterance and run is not None:  # closed by this frame
                events.insert(before, EndpointEvent("audio", run_t, audio=frames[run : i + 1].reshape(-1)))
                run = None
            elif not was_open and self.in_utterance:  # opened (the pre-roll went out)
                run, run_t = i + 1, self.stream_ms
        if self.in_utterance and run is not None and run < n_frames:
            events.append(EndpointEvent("audio", run_t, audio=frames[run:].reshape(-1)))
        self._pending = buf[n_frames * FRAME_SAMPLES :].copy()
        return events

    def finish(self) -> list[EndpointEvent]:
        """The stream ended: close any open utterance."""
        events: list[EndpointEvent] = []
        if self.in_utterance:
            self._close(events, "stream_end")
        return events

    def _frame(self, frame: Int16Array, voiced: bool, events: list[EndpointEvent]) -> None:
        """One frame's decision; the audio of frames inside an utterance is handed out
        by :meth:`process`, in runs."""
        cfg = self.config
        t0 = self.stream_ms
        self._pos += FRAME_SAMPLES
        t1 = self.stream_ms
        if not self.in_utterance:
            self._pre_roll.append(frame)
            self._recent_voiced.append(voiced)
            needed = self._recent_voiced.maxlen or 1
            if len(self._recent_voiced) == needed and all(self._recent_voiced):
                self.in_utterance = True
                audio = np.concatenate(list(self._pre_roll))
                self._utt_start_ms = t1 - audio.size * 1000.0 / PIPELINE_SAMPLE_RATE_HZ
                self._speech_ms = needed * FRAME_MS
                self._silence_ms = 0.0
                self._last_voiced_end_ms = t1
                self._pre_roll.clear()
                self._recent_voiced.clear()
                events.append(EndpointEvent("start", self._utt_start_ms))
                events.append(EndpointEvent("audio", t0, audio=audio))
            return
        if voiced:
            self._speech_ms += FRAME_MS
            self._silence_ms = 0.0
            self._last_voiced_end_ms = t1
        else:
            self._silence_ms += FRAME_MS
        if self._silence_ms >= cfg.end_of_utterance_silence_ms:
            self._close(events, "silence")
        elif t1 - self._utt_start_ms >= cfg.max_utterance_ms:
            self._close(events, "max_length")

    def _close(self, events: list[EndpointEvent], reason: EndReason) -> None:
        self.in_utterance = False
        end_ms = self._last_voiced_end_ms if reason != "max_length" else self.stream_ms
        if self._speech_ms < self.config.min_speech_ms:
            events.append(EndpointEvent("abandon", end_ms, speech_ms=self._speech_ms))
        else:
            events.append(
                EndpointEvent("end", end_ms, reason=reason, speech_ms=self._speech_ms)
            )
        self._silence_ms = 0.0
        self._speech_ms = 0.0


def make_endpointer(settings: object) -> Endpointer:
    """The endpointer the product uses, configured from settings."""
    classifier = WebRtcFrameClassifier(
        mode=settings.vad_mode,
        floor_dbfs=settings.vad_speech_threshold_db,
        snr_gate_db=getattr(settings, "vad_snr_gate_db", 6.0),
    )
    return Endpointer(EndpointConfig.from_settings(settings), classifier)
