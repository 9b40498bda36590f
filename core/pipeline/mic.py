"""A simulated microphone: caller audio played into a session in real time, 20 ms a frame,
with the agent's own voice optionally leaking back in (the demo history and benchmarks)."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from core.pipeline.session import VoiceSession
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array, resample

FRAME = PIPELINE_SAMPLE_RATE_HZ // 50  # 20 ms


class Mic:
    """Feeds a session in real time: queued caller speech, plus optional echo."""

    def __init__(self, session: VoiceSession, echo_gain: float = 0.0, echo_delay_ms: int = 60):
        self.session = session
        self.queue: deque[Int16Array] = deque()
        self.echo: deque[Int16Array] = deque([np.zeros(echo_delay_ms * 16, np.int16)])
        self.echo_gain = echo_gain
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def say(self, audio: Int16Array) -> None:
        with self._lock:
            self.queue.extend(audio[i : i + FRAME] for i in range(0, audio.size, FRAME))

    def busy(self) -> bool:
        with self._lock:
            return bool(self.queue)

    def leak(self, pcm48k: Int16Array) -> None:
        if self.echo_gain:
            with self._lock:
                self.echo.append(resample(pcm48k, 48000, PIPELINE_SAMPLE_RATE_HZ))

    def clear_echo(self) -> None:
        with self._lock:
            self.echo.clear()

    def _take(self, source: deque[Int16Array]) -> Int16Array:
        out = np.zeros(FRAME, np.int16)
        filled = 0
        while source and filled < FRAME:
            chunk = source.popleft()
            n = min(FRAME - filled, chunk.size)
            out[filled : filled + n] = chunk[:n]
            if n < chunk.size:
                source.appendleft(chunk[n:])
            filled += n
        return out

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                frame = self._take(self.queue).astype(np.int32)
                if self.echo_gain:
                    frame += (self._take(self.echo) * self.echo_gain).astype(np.int32)
            self.session.push_pcm(np.clip(frame, -32768, 32767).astype(np.int16))
            next_at += FRAME / PIPELINE_SAMPLE_RATE_HZ
            time.sleep(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


class LeakyOut:
    """Agent audio output that 'plays' in real time and can leak into the mic."""

    def __init__(self) -> None:
        self.mic: Mic | None = None
        self.pushed = 0

    def push(self, pcm: Int16Array) -> None:
        self.pushed += pcm.size
        if self.mic is not None:
            self.mic.leak(pcm)

    def clear(self) -> None:
        if self.mic is not None:
            self.mic.clear_echo()
