"""An utterance's way from the endpointer to a stored line.

:class:`Utterances` runs on a session's loop. It opens a recogniser stream when the
endpointer says speech started, feeds it the utterance's audio, passes on partial text
and, in a pause, the recogniser's settled words; when the utterance ends it queues it
(:attr:`Utterances.ending`) for :meth:`Utterances.finalize`, which waits for the final
transcript, redacts it, stores it *before* announcing it, and records where the time
went. The session (:mod:`core.pipeline.session`) owns the thread, the inbox and the call.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.language.text import is_junk
from core.ops.observability import stage_span
from core.pipeline.events import FinalEvent, PartialEvent, SessionEvent, SettledEvent, SpeechStartedEvent
from core.pipeline.vad import Endpointer, EndpointEvent
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ
from core.speech.stt import STTEngine, STTError, UtteranceStream
from core.store import SegmentRecord, Store, StoreError, UtteranceTiming

log = logging.getLogger(__name__)

ARRIVALS_KEPT = 2000  # (stream end ms, arrival) pairs: 40 s of 20 ms frames


@dataclass
class SessionSide:
    """What the utterances report to their session (all called on the session loop,
    except ``call_soon``, which any thread may call)."""

    emit: Callable[[SessionEvent], None]
    record_error: Callable[[str], None]
    show: Callable[..., None]  # show(partial=..., in_speech=...): the live snapshot
    saved: Callable[[SegmentRecord, UtteranceTiming], None]  # a finished line, for the snapshot
    call_soon: Callable[[Callable[[], None]], None]
    outbox: list[Callable[[], None]]  # store writes to retry (the session flushes them)


class Utterances:
    """One call's utterances, from endpoint events to stored lines."""

    def __init__(
        self,
        call_id: str,
        stt: STTEngine,
        store: Store,
        endpointer: Endpointer,
        side: SessionSide,
        redact: Callable[..., str],
        partial_interval_ms: float,
    ):
        self.call_id = call_id
        self._stt = stt
        self._store = store
        self._endpointer = endpointer
        self._side = side
        self._redact = redact
        self._partial_interval_ms = partial_interval_ms
        self._stream: UtteranceStream | None = None
        self._start_ms = 0.0
        self._since_partial_ms = 0.0
        self._settled_for = -1.0  # the speech end a SettledEvent went out for (one per pause)
        # settled words of a recogniser that does not call back on its finals are asked for
        # on each chunk of a pause; one that does (Deepgram) is asked when a final arrives
        self._poll_settled = False
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=ARRIVALS_KEPT)
        # ended utterances waiting for their final: (stream, start ms, end event, speech end arrival)
        self.ending: list[tuple[UtteranceStream, float, EndpointEvent, float]] = []

    def arrived(self, stream_ms: float, at: float) -> None:
        """Audio up to ``stream_ms`` arrived at monotonic time ``at``."""
        self._arrivals.append((stream_ms, at))

    def _speech_end_arrival(self, t_ms: float) -> float:
        arrivals = self._arrivals
        i = bisect_left(arrivals, t_ms, key=lambda a: a[0])
        return arrivals[min(i, len(arrivals) - 1)][1] if arrivals else time.monotonic()

    def _settle(self, stream: UtteranceStream) -> None:
        """In a pause, pass on the recogniser's settled words (once per pause)."""
        settled = getattr(stream, "settled_text", None)
        speech_end = self._endpointer.speech_end_ms
        if settled is None or self._endpointer.pause_ms <= 0 or speech_end == self._settled_for:
            return
        text = settled(speech_end - self._start_ms)
        if text is None:
            return
        self._settled_for = speech_end
        if not is_junk(text):  # judged before redaction: a line that is all "[CARD]" is not junk
            self._side.emit(SettledEvent(self.call_id, self._redact(text.strip(), peek=True), self._start_ms))

    def _settle_soon(self, opened: UtteranceStream) -> Callable[[], None]:
        """A callback for the recogniser's thread: settle ``opened`` on the session loop."""

        def check() -> None:
            if self._stream is opened:  # still the open utterance
                self._settle(opened)

        return lambda: self._side.call_soon(check)

    def _open_stream(self) -> UtteranceStream | None:
        try:
            return self._stt.open()
        except STTError as exc:
            self._side.record_error(f"speech recognition unavailable: {exc}")
            return None

    def handle(self, events: list[EndpointEvent]) -> None:
        """The endpointer's events for one frame."""
        for ev in events:
            if ev.kind == "start":
                self._start(ev)
            elif ev.kind == "audio" and self._stream is not None and ev.audio is not None:
                self._accept(self._stream, ev.audio)
            elif ev.kind == "abandon":
                if self._stream is not None:
                    self._stream.cancel()
                self._stream = None
                self._side.show(in_speech=False, partial="")
            elif ev.kind == "end":
                stream, self._stream = self._stream, None
                self._side.show(in_speech=False)
                if stream is not None:  # finalised after the frame (it may wait)
                    self.ending.append((stream, self._start_ms, ev, self._speech_end_arrival(ev.t_ms)))

    def _start(self, ev: EndpointEvent) -> None:
        if self._stream is not None:
            self._stream.cancel()
        stream = self._stream = self._open_stream()
        if stream is not None and hasattr(stream, "on_final"):  # settled words as soon as they arrive
            stream.on_final = self._settle_soon(stream)
        # a recogniser that decodes when asked in a pause (the neural one) is polled even
        # though it also calls back when that decode is done
        self._poll_settled = hasattr(stream, "settled_text") and (
            not hasattr(stream, "on_final") or bool(getattr(stream, "settles_on_poll", False))
        )
        self._start_ms = ev.t_ms
        self._since_partial_ms = 0.0
        self._side.show(in_speech=True)
        self._side.emit(SpeechStartedEvent(self.call_id, ev.t_ms))

    def _accept(self, stream: UtteranceStream, audio: Any) -> None:
        try:
            stream.accept(audio)
        except STTError as exc:
            self._side.record_error(f"speech recognition failed: {exc}")
            stream.cancel()
            self._stream = None
            return
        self._since_partial_ms += audio.size * 1000.0 / PIPELINE_SAMPLE_RATE_HZ
        if self._poll_settled:
            self._settle(stream)
        if self._since_partial_ms >= self._partial_interval_ms:
            self._since_partial_ms = 0.0
            text = self._redact(stream.partial(), partial=True)
            if text:
                self._side.show(partial=text)
                self._side.emit(PartialEvent(self.call_id, text, self._start_ms))

    def finalize(
        self, stream: UtteranceStream, t_start_ms: float, ev: EndpointEvent, speech_end_at: float
    ) -> None:
        """The final transcript of an ended utterance, stored, then announced. May wait
        (the recogniser's final, the store): the session runs it where that is allowed."""
        call_id = self.call_id
        decided_at = time.monotonic()
        try:
            with stage_span("stt", call_id):
                transcript = stream.finish(ev.t_ms - t_start_ms)
        except STTError as exc:
            self._side.record_error(f"speech recognition failed: {exc}")
            return
        self._side.show(partial="")
        if is_junk(transcript.text):  # judged before redaction: a line that is all "[CARD]" is kept
            return
        text = self._redact(transcript.text.strip())
        seg = SegmentRecord(
            id=0, call_id=call_id, speaker="caller", text=text, t_start_ms=t_start_ms,
            t_end_ms=ev.t_ms, confidence=transcript.confidence, created_at=time.time(),
        )
        persisted = True
        try:
            seg = self._store.add_segment(call_id, "caller", text, t_start_ms, ev.t_ms, transcript.confidence)
        except StoreError as exc:
            persisted = False
            self._side.record_error(f"could not save an utterance yet (kept, will retry): {exc}")
            pending = seg
            self._side.outbox.append(lambda: self._store.add_segment(
                call_id, "caller", pending.text, pending.t_start_ms, pending.t_end_ms, pending.confidence,
            ))
        final_at = time.monotonic()
        timing = UtteranceTiming(
            speech_end_to_final_ms=(final_at - speech_end_at) * 1000.0,
            endpoint_ms=(decided_at - speech_end_at) * 1000.0,
            stt_finalize_ms=(final_at - decided_at) * 1000.0,
            decode_ms=transcript.decode_ms,
            audio_ms=transcript.audio_ms,
            rtf=transcript.decode_ms / transcript.audio_ms if transcript.audio_ms else 0.0,
            segment_id=seg.id if persisted else None,
            call_id=call_id,
            created_at=time.time(),
        )
        try:
            self._store.add_timing(timing)
        except StoreError as exc:
            self._side.outbox.append(lambda: self._store.add_timing(timing))
            self._side.record_error(f"could not save timings yet: {exc}")
        self._side.saved(seg, timing)
        self._side.emit(FinalEvent(call_id, seg, timing, persisted))
