"""The voice session engine: audio frames in, a live and persisted transcript out.

A :class:`VoiceSession` owns a background thread running its own asyncio loop. Media
callbacks (aiortc's loop, another thread) hand frames over through an inbox that wakes
the loop only when it is not already due to run (:meth:`VoiceSession.push_frame`); the
session thread converts them to 16 kHz mono, runs
voice activity detection, streams speech into the recogniser, persists every final
utterance *before* announcing it, and keeps a typed snapshot for the UI to poll.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.pipeline.events import (
    ErrorEvent,
    SessionEvent,
    SessionSnapshot,
    SessionState,
)
from core.pipeline.reaper import process_owner
from core.pipeline.utterances import SessionSide, Utterances
from core.pipeline.vad import Endpointer
from core.speech.audio import (
    PIPELINE_SAMPLE_RATE_HZ,
    AudioFormatError,
    FrameConverter,
    Int16Array,
    StreamResampler,
    dbfs,
)
from core.speech.stt import STTEngine
from core.store import SegmentRecord, Store, StoreError, UtteranceTiming

if TYPE_CHECKING:
    from core.pipeline.session_loop import SessionLoop

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 2.0
# A call whose owner has not heart-beaten for this long is considered dead.
STALE_CALL_AFTER_S = 20.0
NO_AUDIO_TIMEOUT_S = 20.0
MAX_BACKLOG_AUDIO_MS = 120_000
RECENT_EVENTS = 200

@dataclass
class _Mutable:
    state: SessionState = "idle"
    partial: str = ""
    in_speech: bool = False
    segments: list[SegmentRecord] = field(default_factory=list)
    timings: list[UtteranceTiming] = field(default_factory=list)
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    level_dbfs: float = -120.0
    frames_received: int = 0
    frames_rejected: int = 0
    backlog_ms: float = 0.0
    stream_ms: float = 0.0


class VoiceSession:
    """One call's audio pipeline running on its own thread."""

    def __init__(
        self,
        store: Store,
        stt: STTEngine,
        endpointer_factory: Callable[[], Endpointer],
        *,
        source: str = "browser",
        metadata: dict[str, Any] | None = None,
        partial_interval_ms: int = 200,
        no_audio_timeout_s: float = NO_AUDIO_TIMEOUT_S,
        redact: Callable[..., str] | None = None,
        recorder: Callable[[str], Any] | None = None,
        host: SessionLoop | None = None,
    ):
        self._store = store
        # None: the session runs its own thread and loop (what the voice agent needs);
        # a SessionLoop: it shares that loop with other transcription-only sessions.
        self._host = host
        self._stt = stt
        self._endpointer_factory = endpointer_factory
        self._source = source
        self._metadata = dict(metadata or {})
        self._partial_interval_ms = partial_interval_ms
        self._no_audio_timeout_s = no_audio_timeout_s
        # PII is removed before a line is stored, shown or handed to a responder.
        self._redact: Callable[..., str] = redact or (lambda text, partial=False, peek=False: text)
        # call id → object with write(pcm16k) / close() (core.pipeline.recording), when recording is on
        self._recorder_factory = recorder
        self._recorder: Any = None
        self._lock = threading.Lock()
        self._m = _Mutable()
        self._listeners: list[Callable[[SessionEvent], None]] = []
        self._done_callbacks: list[Callable[[], None]] = []
        self.events: queue.Queue[SessionEvent] = queue.Queue(maxsize=RECENT_EVENTS)
        self._pushed = 0
        self._processed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[Any, float] | None] | None = None
        self._thread: threading.Thread | None = None
        self._hosted: concurrent.futures.Future[None] | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._stop_requested = False
        # how the call ends when stop() asks for it: "failed" with a reason when the
        # connection was lost rather than ended by the user (see CaptureBridge.fail)
        self._end_status: Literal["ended", "failed"] = "ended"
        self._end_error: str | None = None
        self._backlog_samples = 0
        # Frames handed over from other threads; the loop is woken once per batch.
        self._inbox: deque[tuple[Any, float] | None] = deque()
        self._wake_pending = False
        self._outbox: list[Callable[[], None]] = []
        self.call_id: str | None = None

    # --- public API (any thread) ----------------------------------------------------
    def add_listener(self, callback: Callable[[SessionEvent], None]) -> None:
        """Called on the session thread for every event; must be quick."""
        self._listeners.append(callback)

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Called once, on the session's thread, after the call is closed in the store
        (whatever ended it); lets registries drop the session at once."""
        self._done_callbacks.append(callback)

    def _run_done_callbacks(self) -> None:
        for callback in self._done_callbacks:
            try:
                callback()
            except Exception:
                log.exception("session done callback failed", extra={"call_id": self.call_id})
        self._done_callbacks.clear()
        self._listeners.clear()  # the agent's listener holds the agent and its buffers

    def start(self) -> str:
        """Create the call in the store and start the pipeline (its own thread, or a
        coroutine on the host loop).

        Raises:
            StoreError: the call could not be created (nothing was started).
        """
        if self.started:
            raise RuntimeError("session already started")
        # the owner lets a restarted process fail this call at once if this one dies
        call = self._store.create_call(self._source, {**self._metadata, "owner": process_owner()})
        self.call_id = call.id
        if self._recorder_factory is not None:
            self._recorder = self._recorder_factory(call.id)
        with self._lock:
            self._m.state = "listening"  # before the pipeline runs: a crash may set "failed"
        if self._host is not None:
            self._loop = self._host.loop
            self._queue = asyncio.Queue()
            self._hosted = asyncio.run_coroutine_threadsafe(self._hosted_main(), self._host.loop)
        else:
            self._thread = threading.Thread(
                target=self._thread_main, name=f"voice-session-{call.id}", daemon=True
            )
            self._thread.start()
            self._ready.wait(timeout=10)
        log.info("call started", extra={"call_id": call.id, "source": self._source})
        return call.id

    def push_frame(self, frame: Any) -> None:
        """Hand over one ``av.AudioFrame`` (or ``(int16 samples, rate)``). Never blocks.

        Waking another thread's event loop (``call_soon_threadsafe`` writes to its
        self-pipe, the loop wakes to read it) cost half of a cloud session's CPU when done
        for every 20 ms frame. Frames go to an inbox instead, and the loop is woken only
        when no wake-up is pending: an idle session still sees each frame at once, a
        busy process hands a session several frames per wake-up.
        """
        if self._stop_requested:
            return
        if self._enqueue((frame, time.monotonic())):
            self._pushed += 1

    def _enqueue(self, item: tuple[Any, float] | None) -> bool:
        loop = self._loop
        if loop is None or self._queue is None or loop.is_closed():
            return False
        self._inbox.append(item)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                if self._host is not None:
                    self._host.wake(self)
                else:
                    loop.call_soon_threadsafe(self._take_inbox)
            except RuntimeError:
                return False  # loop closed between the check and the call: the session is over
        return True

    def _take_inbox(self) -> None:
        """Session loop: move everything handed over into the processing queue."""
        assert self._queue is not None
        # cleared before draining: a frame appended after this line schedules a new wake-up,
        # one appended before it is drained below
        self._wake_pending = False
        inbox = self._inbox
        while inbox:
            self._queue.put_nowait(inbox.popleft())

    def push_pcm(self, samples: Int16Array, sample_rate_hz: int = PIPELINE_SAMPLE_RATE_HZ) -> None:
        self.push_frame((np.asarray(samples, dtype=np.int16), sample_rate_hz))

    def stop(
        self, timeout_s: float = 10.0, *, status: Literal["ended", "failed"] = "ended",
        error: str | None = None,
    ) -> None:
        """Finish the open utterance, persist everything and end the call. Idempotent.

        ``status="failed"`` with ``error``: the call was cut off (connection lost, tab
        gone), not ended by the user; what was said is still saved.
        """
        if not self.running:
            return
        if not self._stop_requested:  # the first reason wins
            self._end_status, self._end_error = status, error
        self._stop_requested = True
        with self._lock:
            if self._m.state == "listening":
                self._m.state = "stopping"
        self._enqueue(None)  # after every frame already handed over
        self._done.wait(timeout=timeout_s)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the session loop (from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    @property
    def stream_ms(self) -> float:
        """Audio time received so far in this call (the clock segments are stamped with)."""
        with self._lock:
            return self._m.stream_ms

    def report_error(self, message: str) -> None:
        """Surface a non-fatal problem to the UI and the log."""
        self._record_error(message)

    def add_segment_to_snapshot(self, segment: SegmentRecord) -> None:
        """Show a segment persisted by a collaborator (the agent) in the live snapshot."""
        with self._lock:
            self._m.segments.append(segment)
            self._m.segments.sort(key=lambda s: s.t_start_ms)

    @property
    def started(self) -> bool:
        """``start`` was called (on its own thread, or hosted on a shared loop)."""
        return self._thread is not None or self._hosted is not None

    @property
    def running(self) -> bool:
        return self.started and not self._done.is_set()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until every frame handed over so far has been processed (tests, tools)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._processed >= self._pushed or self._done.is_set():
                return True
            time.sleep(0.005)
        return False

    def snapshot(self) -> SessionSnapshot:
        with self._lock:
            m = self._m
            return SessionSnapshot(
                call_id=self.call_id,
                state=m.state,
                partial=m.partial,
                in_speech=m.in_speech,
                segments=tuple(m.segments),
                timings=tuple(m.timings),
                errors=tuple(m.errors),
                level_dbfs=m.level_dbfs,
                frames_received=m.frames_received,
                frames_rejected=m.frames_rejected,
                backlog_ms=self._backlog_samples * 1000.0 / PIPELINE_SAMPLE_RATE_HZ,
                stream_ms=m.stream_ms,
                unsaved=len(self._outbox),
            )

    # --- session thread -------------------------------------------------------------
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._queue = asyncio.Queue()
        self._ready.set()
        status: Literal["ended", "failed"] = "ended"
        error: str | None = None
        try:
            loop.run_until_complete(self._run())
            status, error = self._end_status, self._end_error
        except Exception as exc:  # a crash must not leave the call "active" forever
            status, error = self._crashed(exc)
        finally:
            # Collaborators' tasks (the agent's reply) end with the call and save what
            # they had before the call is closed.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._close_call(status, error)
            loop.close()
            self._loop = None
            self._done.set()
            self._run_done_callbacks()

    async def _hosted_main(self) -> None:
        """The session on a shared loop: its own coroutine, nothing else of the loop's."""
        status: Literal["ended", "failed"] = "ended"
        error: str | None = None
        try:
            await self._run()
            status, error = self._end_status, self._end_error
        except Exception as exc:
            status, error = self._crashed(exc)
        finally:
            assert self._host is not None
            await self._host.blocking(self._close_call, status, error)
            self._loop = None
            self._done.set()
            self._run_done_callbacks()

    def _crashed(self, exc: Exception) -> tuple[Literal["failed"], str]:
        error = f"{type(exc).__name__}: {exc}"
        # exc_info (not a formatted trace) so error reporting receives the exception itself
        log.exception("session crashed", extra={"call_id": self.call_id})
        self._emit(ErrorEvent(self.call_id or "", f"The call stopped: {error}", fatal=True))
        return "failed", error

    def _close_call(self, status: Literal["ended", "failed"], error: str | None) -> None:
        self._flush_outbox()
        if self._recorder is not None:
            self._recorder.close()
        try:
            self._store.end_call(self.call_id or "", status=status, error=error)
        except StoreError as exc:
            self._record_error(f"could not mark the call {status}: {exc}")
        with self._lock:
            self._m.state = status
            self._m.partial = ""
            self._m.in_speech = False
        log.info("call ended", extra={"call_id": self.call_id, "status": status})

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a call that may wait (store, recogniser's final): in place on the session's
        own loop, on the host's executor when the loop is shared."""
        if self._host is None:
            return fn(*args)
        return await self._host.blocking(fn, *args)

    async def _run(self) -> None:
        assert self._queue is not None
        endpointer = self._endpointer_factory()
        converter = FrameConverter()
        pcm_resampler = StreamResampler()
        last_heartbeat = time.monotonic()
        last_audio = time.monotonic()
        utterances = Utterances(
            self.call_id or "", self._stt, self._store, endpointer, self._side(), self._redact,
            self._partial_interval_ms,
        )
        handle, ending = utterances.handle, utterances.ending

        async def finalize_ended() -> None:
            while ending:
                await self._blocking(utterances.finalize, *ending.pop(0))

        while True:
            if not self._queue.empty():  # no timer per frame when frames are waiting
                item = self._queue.get_nowait()
            else:
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout=HEARTBEAT_INTERVAL_S)
                except TimeoutError:
                    item = ()  # type: ignore[assignment]
            now = time.monotonic()
            if now - last_heartbeat >= HEARTBEAT_INTERVAL_S:
                last_heartbeat = now
                await self._blocking(self._heartbeat)
            if item is None:  # stop requested
                handle(endpointer.finish())
                await finalize_ended()
                return
            if item == ():
                if now - last_audio > self._no_audio_timeout_s:
                    reason = f"no audio for {self._no_audio_timeout_s:.0f} s: the call was ended"
                    self._record_error(reason)
                    if not self._stop_requested:
                        self._end_status, self._end_error = "failed", reason
                    handle(endpointer.finish())
                    await finalize_ended()
                    return
                continue
            frame, arrived = item
            last_audio = now
            try:
                self._process_frame(frame, arrived, converter, pcm_resampler, endpointer, utterances)
                if ending:
                    await finalize_ended()
            finally:
                self._processed += 1
            if self._queue.empty():
                self._backlog_samples = 0
                await asyncio.sleep(0)

    def _process_frame(
        self,
        frame: Any,
        arrived: float,
        converter: FrameConverter,
        pcm_resampler: StreamResampler,
        endpointer: Endpointer,
        utterances: Utterances,
    ) -> None:
        assert self._queue is not None
        try:
            if isinstance(frame, tuple):
                samples, rate = frame
                if rate == PIPELINE_SAMPLE_RATE_HZ:
                    pcm = samples
                else:
                    pcm = pcm_resampler.process(samples.astype(np.float32) / 32768.0, rate)
            else:
                pcm = converter.convert(frame)
        except (AudioFormatError, ValueError) as exc:
            with self._lock:
                self._m.frames_rejected += 1
                rejected = self._m.frames_rejected
            if rejected <= 3 or rejected % 100 == 0:
                self._record_error(f"ignored a malformed audio frame ({exc}); {rejected} so far")
            return
        # Backlog = audio handed over but not processed yet, from arrival times: frames
        # vary in size, so counting queued frames would misjudge it.
        behind_s = time.monotonic() - arrived
        self._backlog_samples = int(behind_s * PIPELINE_SAMPLE_RATE_HZ) if self._queue.qsize() else 0
        if behind_s * 1000.0 > MAX_BACKLOG_AUDIO_MS:
            self._drain_backlog()
        with self._lock:
            self._m.frames_received += 1
            self._m.level_dbfs = dbfs(pcm)
        if self._recorder is not None:
            self._recorder.write(pcm)
        utterances.handle(endpointer.process(pcm))
        utterances.arrived(endpointer.stream_ms, arrived)
        with self._lock:
            self._m.stream_ms = endpointer.stream_ms

    def _heartbeat(self) -> None:
        try:
            self._store.heartbeat(self.call_id or "")
        except StoreError as exc:
            self._record_error(str(exc))
        self._flush_outbox()

    def _drain_backlog(self) -> None:
        """Audio is arriving far faster than it can be processed: drop the excess, say so."""
        assert self._queue is not None
        dropped = 0
        stop_seen = False
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                stop_seen = True
                continue
            dropped += 1
            self._processed += 1
        if stop_seen:
            self._queue.put_nowait(None)
        with self._lock:
            self._m.frames_rejected += dropped
        self._record_error(
            f"audio arrived far faster than real time: {dropped} frames beyond "
            f"{MAX_BACKLOG_AUDIO_MS / 1000:.0f} s of backlog were skipped"
        )

    def _side(self) -> SessionSide:
        """How this session's utterances reach its snapshot, listeners and store retries."""

        def show(*, partial: str | None = None, in_speech: bool | None = None) -> None:
            with self._lock:
                if partial is not None:
                    self._m.partial = partial
                if in_speech is not None:
                    self._m.in_speech = in_speech

        def saved(segment: SegmentRecord, timing: UtteranceTiming) -> None:
            with self._lock:
                self._m.segments.append(segment)
                self._m.timings.append(timing)

        return SessionSide(self._emit, self._record_error, show, saved, self.call_soon, self._outbox)

    def _flush_outbox(self) -> None:
        while self._outbox:
            try:
                self._outbox[0]()
            except StoreError:
                return
            self._outbox.pop(0)

    def _record_error(self, message: str) -> None:
        log.warning(message, extra={"call_id": self.call_id})
        with self._lock:
            self._m.errors.append(message)
        self._emit(ErrorEvent(self.call_id or "", message))

    def _emit(self, event: SessionEvent) -> None:
        while True:  # keep the most recent events for readers that poll late
            try:
                self.events.put_nowait(event)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.events.get_nowait()
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("session listener failed", extra={"call_id": self.call_id})
