"""One speech worker process: its decoding loop, and the parent's end of it.

The worker runs a :class:`~core.speech.stt.pocketsphinx_stt.PocketsphinxEngine` and decodes the
utterances its parent sends over a pipe; the parent keeps a reader thread per worker that
hands each answer to the stream it is for (:class:`WorkerStream`). See
:mod:`core.speech.stt.process_pool` for the engine built on it.

Messages, parent → worker: ``("open", sid)``, ``("audio", sid, int16 bytes)``,
``("finish", sid)``, ``("cancel", sid)``, ``("ping", token)``, ``("stop",)``.
Worker → parent: ``("ready",)`` or ``("failed", reason)`` once, then ``("partial", sid,
text)`` when a partial changes, ``("final", sid, text, confidence, decode_ms, audio_ms)``,
``("error", sid, reason)`` and ``("pong", token)``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.speech.stt import STTError
from core.speech.stt.pocketsphinx_stt import PocketsphinxEngine

STOP_JOIN_S = 5.0  # a stopped worker must exit within this, or it is terminated

_launcher_lock = threading.Lock()
_launcher: ThreadPoolExecutor | None = None


class WorkerStream(Protocol):
    """What a worker's reader thread hands messages to."""

    sid: int

    def on_message(self, msg: tuple[Any, ...]) -> None: ...


def _launch(start: Any) -> None:
    """Run ``start`` (a process start) on the launcher thread and wait for it.

    Processes inherit their creator's nice value, and the speech-model refresher runs
    niced: starting every worker from one thread made by the first engine keeps them all
    at the app's priority.
    """
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = ThreadPoolExecutor(1, thread_name_prefix="stt-worker-launch")
            _launcher.submit(lambda: None).result()  # the thread exists now, at our priority
    _launcher.submit(start).result()


def _serve(conn: Connection, lm_path: str | None, dict_path: str | None,
           options: dict[str, object], floor: float | None) -> None:
    """A worker's loop: decode the utterances its parent sends, answer on ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:
        engine = PocketsphinxEngine(
            Path(lm_path) if lm_path else None, Path(dict_path) if dict_path else None, options, floor
        )
    except STTError as exc:
        conn.send(("failed", str(exc)))
        return
    conn.send(("ready",))
    streams: dict[int, Any] = {}
    partials: dict[int, str] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent has gone
            break
        kind = msg[0]
        if kind == "stop":
            break
        if kind == "ping":
            conn.send(("pong", msg[1]))
            continue
        sid = msg[1]
        try:
            if kind == "open":
                streams[sid] = engine.open()
            elif kind == "audio" and sid in streams:
                stream = streams[sid]
                stream.accept(np.frombuffer(msg[2], dtype=np.int16))
                text = stream.partial()
                if text != partials.get(sid, ""):
                    partials[sid] = text
                    conn.send(("partial", sid, text))
            elif kind == "finish":
                partials.pop(sid, None)
                if sid not in streams:
                    conn.send(("error", sid, "the utterance was lost in the worker"))
                    continue
                t = streams.pop(sid).finish()
                conn.send(("final", sid, t.text, t.confidence, t.decode_ms, t.audio_ms))
            elif kind == "cancel" and sid in streams:
                partials.pop(sid, None)
                streams.pop(sid).cancel()
        except STTError as exc:
            broken = streams.pop(sid, None)
            if broken is not None:
                broken.cancel()
            conn.send(("error", sid, str(exc)))
    for stream in streams.values():
        stream.cancel()


class WorkerProcess:
    """The parent's end of one worker process: its pipe, a reader thread, its streams.

    Args:
        ctx: the multiprocessing context (``spawn``).
        config: ``_serve``'s model arguments (LM path, dictionary path, options, noise floor).
        index: numbers the process's name.
    """

    def __init__(self, ctx: Any, config: tuple[Any, ...], index: int):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_serve, args=(child, *config), name=f"stt-worker-{index}", daemon=True)
        _launch(self.process.start)
        child.close()  # so the reader sees EOF when the worker exits
        self.ready = threading.Event()
        self.failure: str | None = None
        self.dead = False
        self.streams: dict[int, WorkerStream] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pongs: dict[int, threading.Event] = {}
        self._reader = threading.Thread(target=self._read, name=f"stt-worker-{index}-reader", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return not self.dead and self.process.is_alive()

    @property
    def active(self) -> int:
        return len(self.streams)

    def send(self, msg: tuple[Any, ...]) -> None:
        try:
            with self._send_lock:
                self.conn.send(msg)
        except (OSError, ValueError) as exc:  # broken pipe, or closed by stop()
            self.dead = True
            raise STTError(f"the speech worker is gone: {exc}") from exc

    def add(self, stream: WorkerStream) -> None:
        with self._lock:
            self.streams[stream.sid] = stream

    def remove(self, sid: int) -> None:
        with self._lock:
            self.streams.pop(sid, None)

    def ping(self, token: int, timeout_s: float) -> bool:
        """True once the worker has handled every message sent before this one."""
        event = threading.Event()
        with self._lock:
            self._pongs[token] = event
        try:
            self.send(("ping", token))
            return event.wait(timeout_s)
        except STTError:
            return False
        finally:
            with self._lock:
                self._pongs.pop(token, None)

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "ready":
                self.ready.set()
                continue
            if kind == "failed":
                self.failure = msg[1]
                break
            with self._lock:
                pong = self._pongs.get(msg[1]) if kind == "pong" else None
                stream = self.streams.get(msg[1]) if kind != "pong" else None
            if pong is not None:
                pong.set()
            if stream is not None:
                stream.on_message(msg)
        self.dead = True
        self.ready.set()
        with self._lock:
            orphans = list(self.streams.values())
        for stream in orphans:
            stream.on_message(("error", stream.sid, self.failure or "the speech worker exited"))

    def stop(self) -> None:
        """Ask the worker to exit, reap it (terminate if it will not), close the pipe."""
        if self.process.is_alive():
            with contextlib.suppress(STTError):
                self.send(("stop",))
            self.process.join(STOP_JOIN_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_JOIN_S)
        self.process.join(0)
        self._reader.join(STOP_JOIN_S)
        self.dead = True
        self.conn.close()
