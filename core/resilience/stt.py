"""An :class:`~core.speech.stt.STTEngine` that fails over without losing the utterance.

Each utterance keeps its own copy of the audio fed to it. When the engine serving it
fails — while accepting audio, giving a partial, or finishing — a fresh stream is
opened (the same engine again while retries and its breaker allow, else the next one)
and the buffered audio is replayed into it, so the caller's words still reach a
transcript. The offline recogniser at the end of the chain is always tried.

Retries while audio streams in are immediate (the session thread must keep up with
real time); a failed ``finish`` waits the policy's backoff within the stage budget.
For ``stt`` events, ``ms`` of the serving provider is the time from ``finish`` to the
transcript; a provider given up mid-utterance reports the time it served.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np

from core.resilience.breaker import BreakerState
from core.resilience.chain import Chain, ChainFront
from core.resilience.observe import ProviderSink, begin_usage
from core.resilience.retry import Budget
from core.resilience.streams import STREAM_ERRORS
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.speech.stt import STTEngine, STTError, Transcript, UtteranceStream

UNBOUNDED = Budget(float("inf"))  # while audio streams in, only attempts and breakers limit retries


class FallbackSTT(ChainFront):
    """Recognisers in order (primary first, offline last) behind one STTEngine.

    Args:
        chain: the engines with their breakers, retry policy, budget and sink.
        sample_rate_hz: rate of the audio the session feeds (for ``stt_seconds``).
    """

    def __init__(self, chain: Chain[STTEngine], sample_rate_hz: int = PIPELINE_SAMPLE_RATE_HZ):
        super().__init__(chain)
        self.sample_rate_hz = sample_rate_hz

    def with_sink(self, sink: ProviderSink) -> FallbackSTT:
        """The same chain reporting one call's events to ``sink``."""
        return FallbackSTT(self.chain.with_sink(sink), self.sample_rate_hz)


    def open(self) -> FallbackUtterance:
        """A stream for one utterance, served by the first engine that opens.

        Raises:
            STTError: no engine could open a stream.
        """
        return FallbackUtterance(self.chain, self.sample_rate_hz)


class FallbackUtterance:
    """One utterance: forwards to the serving engine, keeps the audio to replay it."""

    def __init__(self, chain: Chain[STTEngine], sample_rate_hz: int):
        self._chain = chain
        self._rate = sample_rate_hz
        self._audio: list[Int16Array] = []
        self._candidates = chain.candidates()
        self._pos = 0
        self._attempt = 0
        self._started = time.monotonic()
        self._stream: UtteranceStream | None = None
        self._last_error: BaseException | None = None
        self._admitted: set[int] = set()
        self._done = False
        self._on_final: Callable[[], None] | None = None
        self._connect()

    @property
    def on_final(self) -> Callable[[], None] | None:
        """Passed on to every engine's stream that calls back on final results."""
        return self._on_final

    @on_final.setter
    def on_final(self, callback: Callable[[], None] | None) -> None:
        self._on_final = callback
        if self._stream is not None and hasattr(self._stream, "on_final"):
            self._stream.on_final = callback

    @property
    def settles_on_poll(self) -> bool:
        """Whether the serving engine's settled words come from the session's pause polls."""
        return bool(getattr(self._stream, "settles_on_poll", False))

    @property
    def provider(self) -> str:
        """The engine serving this utterance now."""
        return self._chain.names[self._candidates[min(self._pos, len(self._candidates) - 1)]]

    def _connect(self) -> None:
        """Open a stream on the current engine and replay the audio; fail over as needed."""
        while self._pos < len(self._candidates):
            index = self._candidates[self._pos]
            if index not in self._admitted:
                if not self._chain.admit(index):
                    self._pos += 1
                    continue
                self._admitted.add(index)
            self._attempt += 1
            try:
                stream = self._chain.engines[index].open()
                if hasattr(stream, "on_final"):
                    stream.on_final = self._on_final
                for chunk in self._audio:
                    stream.accept(chunk)
            except STREAM_ERRORS as exc:
                self._failed(exc, None)
                continue
            self._stream = stream
            return
        raise STTError(f"no speech recogniser could take the utterance: {self._last_error}")

    def _failed(self, error: BaseException, budget: Budget | None) -> float | None:
        """Record a failure of the serving engine.

        Args:
            error: what it raised.
            budget: the request's budget when waiting is allowed (``finish``); None
                while audio streams in, where a retry is immediate.

        Returns:
            Seconds to wait before retrying the same engine, or None when the
            utterance has moved on to the next engine.
        """
        self._last_error = error
        self._stream = None
        index = self._candidates[self._pos]
        self._chain.attempt_failed(index, error)
        if self._chain.breaker(index).state is BreakerState.CLOSED:
            delay = self._chain.policy.delay_before_retry(error, self._attempt, budget or UNBOUNDED)
            if delay is not None:
                return delay if budget is not None else 0.0
        nxt = self._candidates[self._pos + 1] if self._pos + 1 < len(self._candidates) else None
        self._chain.gave_up(index, error, self._started, nxt)
        self._pos += 1
        self._attempt = 0
        self._started = time.monotonic()
        return None

    def _recover(self, error: BaseException) -> None:
        self._failed(error, None)
        self._connect()

    def accept(self, samples: Int16Array) -> None:
        self._audio.append(np.asarray(samples, dtype=np.int16).copy())
        if self._stream is None:
            self._connect()
            return  # _connect replayed everything, this chunk included
        try:
            self._stream.accept(samples)
        except STREAM_ERRORS as exc:
            self._recover(exc)

    def partial(self) -> str:
        """The words so far; never raises (a failure here moves on and shows nothing yet).

        The session does not guard partials the way it guards ``accept`` and ``finish``,
        and a missing partial costs nothing: the utterance's audio is still kept.
        """
        try:
            if self._stream is None:
                self._connect()
            assert self._stream is not None
            try:
                return self._stream.partial()
            except STREAM_ERRORS as exc:
                self._recover(exc)
        except STTError:
            pass  # no engine left: ``accept``/``finish`` report it where the session expects
        return ""

    def settled_text(self, speech_end_ms: float) -> str | None:
        """The serving engine's settled words (see :mod:`core.speech.stt`); None when it has
        none, offers none, or fails (``finish`` then deals with the failure)."""
        settled = getattr(self._stream, "settled_text", None)
        if settled is None:
            return None
        try:
            return settled(speech_end_ms)
        except STREAM_ERRORS:
            return None

    def finish(self, speech_end_ms: float | None = None) -> Transcript:
        """The transcript from the serving engine, or the next one on failure.

        Raises:
            STTError: every engine failed (the last one's error is the cause).
        """
        budget = Budget(self._chain.budget_s)
        self._started = time.monotonic()
        while True:
            if self._stream is None:
                self._connect()
            assert self._stream is not None
            usage = begin_usage()
            try:
                transcript = self._stream.finish(speech_end_ms)
            except STREAM_ERRORS as exc:
                delay = self._failed(exc, budget)
                if delay:
                    time.sleep(delay)
                continue  # reconnects (replaying the audio), or raises with no engine left
            seconds = sum(c.size for c in self._audio) / self._rate
            usage.add(stt_seconds=round(seconds, 3))
            self._chain.succeeded(self._candidates[self._pos], self._started, usage.figures)
            self._done = True
            return transcript

    def cancel(self) -> None:
        if not self._done and self._pos < len(self._candidates):
            self._chain.release(self._candidates[self._pos])  # a half-open probe with no outcome
        self._done = True
        if self._stream is not None:
            with contextlib.suppress(*STREAM_ERRORS):  # the utterance is being dropped anyway
                self._stream.cancel()
