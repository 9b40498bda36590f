"""Offline STT decoded in worker processes, so decoding is not bound to one interpreter lock.

pocketsphinx's ``process_raw`` holds the GIL while it decodes, so in one process every
offline call's decoding shares one core (``docs/performance.md``). :class:`ProcessPoolEngine`
keeps W worker processes, each running a :class:`~core.speech.stt.pocketsphinx_stt.PocketsphinxEngine`
built from the same files and options as the in-process engine (it is handed paths, not
objects), so the same audio gives the same transcript.

Each utterance stream is pinned to one worker (the least busy when it opens). ``accept``
buffers audio and ships it every :data:`SHIP_EVERY_MS` (and on ``partial``/``finish``), so
there is one message per batch rather than per frame; the worker answers with a partial
hypothesis whenever it changes, which ``partial`` returns without waiting. ``finish`` waits
for the final transcript up to a timeout. A worker that dies fails its open utterances
with :class:`~core.speech.stt.STTError` and is replaced when the next utterance opens.

Workers are started with the ``spawn`` context (the app process has threads, so forking
it is unsafe); the worker side is :mod:`core.speech.stt.pool_worker`. A send to a worker blocks
only when its pipe is full (the worker is about a second behind): that back-pressure
keeps an overloaded machine visible as lag rather than as audio piling up unbounded.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing as mp
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.speech.stt import STTError, Transcript
from core.speech.stt.pocketsphinx_stt import DECODER_DEFAULTS, NOISE_FLOOR_DBFS
from core.speech.stt.pool_worker import WorkerProcess

log = logging.getLogger(__name__)

SHIP_EVERY_MS = 160  # audio buffered before it is sent to the worker (one message per batch)
FINISH_TIMEOUT_S = 5.0  # wait for the final transcript at most this long
WORKER_START_TIMEOUT_S = 60.0  # spawn, imports and the first decoder (~1 s when idle)
RETIRE_GRACE_S = 120.0  # a replaced engine's workers are stopped at the latest after this


def default_workers() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


class ProcessPoolEngine:
    """An :class:`core.speech.stt.STTEngine` decoding with pocketsphinx in worker processes.

    Args:
        lm_path: language model file (None: the general en-US one).
        dict_path: pronunciation dictionary (None: the general one).
        decoder_options: pocketsphinx parameters on top of ``DECODER_DEFAULTS``.
        noise_floor_dbfs: noise floor mixed in before decoding (as the in-process engine).
        workers: worker processes (None: one per core).
        finish_timeout_s: how long ``finish`` waits for the final transcript.
        ship_every_ms: audio buffered per message to a worker.

    Raises:
        STTError: a worker could not start or load the model.
    """

    name = "pocketsphinx"

    def __init__(
        self,
        lm_path: Path | None = None,
        dict_path: Path | None = None,
        decoder_options: dict[str, object] | None = None,
        noise_floor_dbfs: float | None = NOISE_FLOOR_DBFS,
        workers: int | None = None,
        finish_timeout_s: float = FINISH_TIMEOUT_S,
        ship_every_ms: int = SHIP_EVERY_MS,
    ):
        self.lm_path = lm_path
        self.dict_path = dict_path
        self.decoder_options: dict[str, object] = {**DECODER_DEFAULTS, **(decoder_options or {})}
        self.noise_floor_dbfs = noise_floor_dbfs
        self.finish_timeout_s = finish_timeout_s
        self.ship_samples = max(1, PIPELINE_SAMPLE_RATE_HZ * ship_every_ms // 1000)
        self._ctx = mp.get_context("spawn")
        self._config = (
            None if lm_path is None else str(lm_path), None if dict_path is None else str(dict_path),
            self.decoder_options, noise_floor_dbfs,
        )
        self._ids = itertools.count()
        self._spawned = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        self._retired = False
        self._workers = [self._start() for _ in range(workers or default_workers())]
        for worker in self._workers:  # fail at start-up, not mid-call
            started = worker.ready.wait(WORKER_START_TIMEOUT_S)
            if not started or worker.dead:
                reason = worker.failure or ("exited while starting" if started else "did not start in time")
                self.close()
                raise STTError(f"speech worker failed: {reason}")
        atexit.register(self.close)

    def _start(self) -> WorkerProcess:
        return WorkerProcess(self._ctx, self._config, next(self._spawned))

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (for measurement)."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def open(self) -> ProcessStream:
        """A stream pinned to the least busy worker; a dead worker is replaced first."""
        with self._lock:
            if self._closed:
                raise STTError("the speech engine has been shut down")
            for i, worker in enumerate(self._workers):
                if not worker.alive:
                    log.warning("speech worker %s exited; starting a replacement", worker.process.pid)
                    worker.stop()
                    self._workers[i] = self._start()
            worker = min(self._workers, key=lambda w: (not w.ready.is_set(), w.active))
            sid = next(self._ids)
            stream = ProcessStream(self, worker, sid)
        stream.start()
        return stream

    def wait_idle(self, timeout_s: float = WORKER_START_TIMEOUT_S) -> bool:
        """Block until every worker has handled what was sent so far (e.g. after a warm-up)."""
        with self._lock:
            workers = list(self._workers)
        return all(w.ping(next(self._ids), timeout_s) for w in workers)

    def released(self, worker: WorkerProcess, sid: int) -> None:
        """A stream is done; a retired engine stops once its last stream is."""
        worker.remove(sid)
        with self._lock:
            idle = self._retired and not self._closed and all(w.active == 0 for w in self._workers)
        if idle:
            threading.Thread(target=self.close, name="stt-pool-retire", daemon=True).start()

    def retire(self) -> None:
        """No more utterances will open here: stop the workers once open ones are done."""
        with self._lock:
            self._retired = True
            idle = all(w.active == 0 for w in self._workers)
        if idle:
            self.close()
            return
        timer = threading.Timer(RETIRE_GRACE_S, self.close)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        """Stop every worker (open utterances fail with STTError); safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.stop()
        atexit.unregister(self.close)


class ProcessStream:
    """One utterance decoded in a worker process.

    Args:
        engine: the engine that opened it.
        worker: the worker it is pinned to.
        sid: its id on that worker's pipe.
    """

    def __init__(self, engine: ProcessPoolEngine, worker: WorkerProcess, sid: int):
        self._engine = engine
        self._worker = worker
        self.sid = sid
        self._buffer: list[Int16Array] = []
        self._buffered = 0
        self._partial = ""
        self._error: str | None = None
        self._result: Transcript | None = None
        self._done = threading.Event()
        self._closed = False

    def start(self) -> None:
        self._worker.add(self)
        try:
            self._worker.send(("open", self.sid))
        except STTError:
            self._release()
            raise

    def on_message(self, msg: tuple[Any, ...]) -> None:
        """A message from the worker about this stream (called on the reader thread)."""
        kind = msg[0]
        if kind == "partial":
            self._partial = msg[2]
        elif kind == "final":
            self._result = Transcript(text=msg[2], confidence=msg[3], decode_ms=msg[4], audio_ms=msg[5])
            self._done.set()
        elif kind == "error":
            self._error = msg[2]
            self._done.set()

    def _ship(self) -> None:
        if not self._buffer:
            return
        audio = np.concatenate(self._buffer).astype("<i2", copy=False)
        self._buffer.clear()
        self._buffered = 0
        self._worker.send(("audio", self.sid, audio.tobytes()))

    def accept(self, samples: Int16Array) -> None:
        if self._closed:
            raise STTError("utterance stream already closed")
        if self._error is not None:
            raise STTError(self._error)
        self._buffer.append(np.array(samples, dtype=np.int16))
        self._buffered += len(samples)
        if self._buffered >= self._engine.ship_samples:
            self._ship()

    def partial(self) -> str:
        """The worker's latest partial hypothesis (sends buffered audio; never waits)."""
        if self._closed or self._error is not None:
            return ""
        try:
            self._ship()
        except STTError:
            return ""
        return self._partial

    def finish(self, speech_end_ms: float | None = None) -> Transcript:
        if self._closed:
            raise STTError("utterance stream already closed")
        self._closed = True
        try:
            if self._error is None:
                self._ship()
                self._worker.send(("finish", self.sid))
            if not self._done.wait(self._engine.finish_timeout_s):
                raise STTError(f"no transcript from the speech worker within {self._engine.finish_timeout_s:.1f} s")
        finally:
            self._release()
        if self._error is not None or self._result is None:
            raise STTError(self._error or "no transcript")
        return self._result

    def cancel(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._worker.send(("cancel", self.sid))
        except STTError:
            pass
        finally:
            self._release()

    def _release(self) -> None:
        self._engine.released(self._worker, self.sid)


__all__ = ["FINISH_TIMEOUT_S", "SHIP_EVERY_MS", "ProcessPoolEngine", "ProcessStream", "default_workers"]
