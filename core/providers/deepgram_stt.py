"""Streaming speech-to-text with Deepgram (``deepgram-sdk`` 7, ``/v1/listen`` websocket).

Connection per utterance
    :class:`core.speech.stt.UtteranceStream` is per utterance and the engine is shared by every
    call in the process, so each stream opens its own websocket. ``open()`` never blocks:
    the connection is made on the stream's worker thread while the caller is still
    speaking, and audio accepted before it is up is buffered and sent as soon as it is.
    Set-up therefore overlaps speech instead of adding to the final's latency: every
    utterance lasts at least ``VC_MIN_SPEECH_MS`` + ``VC_END_OF_UTTERANCE_SILENCE_MS``
    (700 ms by default), far more than a handshake (p50 4-9 ms on loopback on a loaded
    2-core machine, measured by ``tests/providers/test_deepgram_stt.py``; TCP + TLS +
    upgrade is three or four round trips, ~100-300 ms, to Deepgram). A per-call
    connection reused across utterances would save nothing on the final, and it would
    need ``KeepAlive`` between utterances (Deepgram closes a stream after 10 s without
    data) and a way to know where a call ends, which the engine, shared by all calls,
    does not have. Only the first partial waits for the handshake.

Finishing
    Deepgram finalises speech on its own while the caller is silent: with ``endpointing``
    (300 ms) it sends an ``is_final``/``speech_final`` result about that long after the
    speech ends, well inside the session's end-of-utterance silence (500 ms). So when
    ``finish(speech_end_ms)`` is called and the ``is_final`` results already cover the
    audio up to the speech end (plus :data:`FINAL_COVER_MARGIN_MS`), the transcript is
    complete: it is returned at once and only ``CloseStream`` is sent, saving the
    ``Finalize`` round trip on every turn. Otherwise ``finish()`` sends ``Finalize`` and
    ``CloseStream``; Deepgram flushes the remaining audio as ``is_final`` results, then a
    ``Metadata`` message, then closes. The transcript is every ``is_final`` segment
    joined; it is returned as soon as a ``from_finalize`` result, the ``Metadata`` or the
    close arrives, or a :data:`ProviderError` of kind ``timeout`` is raised after
    ``FINAL_TIMEOUT_S``. ``finish()`` blocks its caller for that round trip (the session
    calls it on its loop).

Reconnects
    A dropped connection (or a refused/5xx handshake) is reopened at most
    ``MAX_RECONNECTS_PER_UTTERANCE`` times per utterance and ``MAX_RECONNECTS_PER_MINUTE``
    times per engine, and the utterance's audio so far is sent again from its start, so
    no samples are lost and nothing is counted twice. Authentication, rate-limit and
    bad-request failures are never retried here; retry across calls, circuit breaking and
    fallback belong to :mod:`core.resilience`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from core.providers.deepgram_errors import ERROR_CLOSE_CODES, DeepgramError, close_error, translate_error
from core.providers.vocabulary import select_keyterms
from core.resilience.errors import ErrorKind
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.speech.stt import Transcript

log = logging.getLogger(__name__)

DEFAULT_MODEL = "nova-3"
DEFAULT_ENDPOINTING_MS = 300
# Waiting for the websocket handshake when finish() comes before the connection is up.
CONNECT_TIMEOUT_S = 3.0
# From Finalize to the last final result (Deepgram's own target is a few hundred ms).
FINAL_TIMEOUT_S = 2.0
# How far past the speech end the final results must reach for finish() to skip
# Finalize: the session's VAD may place the end a little before a soft last phoneme.
FINAL_COVER_MARGIN_MS = 100.0
MAX_RECONNECTS_PER_UTTERANCE = 1
MAX_RECONNECTS_PER_MINUTE = 5
_RECONNECT_WINDOW_S = 60.0
_POLL_S = 0.01  # how often finish() checks for a failure while waiting for the handshake
_RECONNECTABLE = frozenset({ErrorKind.CONNECTION, ErrorKind.SERVER})
# Audio is sent in messages of at least this much (Deepgram suggests 20-100 ms): a send
# per 20 ms frame was a third of a cloud session's CPU. Nothing waits on it: finish()
# sends what is left before Finalize, so only interim results come up to 40 ms later.
SEND_CHUNK_MS = 60
_SEND_CHUNK_BYTES = PIPELINE_SAMPLE_RATE_HZ * 2 * SEND_CHUNK_MS // 1000


class ReconnectBudget:
    """At most ``per_minute`` reconnects in any sliding minute (thread-safe)."""

    def __init__(self, per_minute: int = MAX_RECONNECTS_PER_MINUTE):
        self.per_minute = per_minute
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def take(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] > _RECONNECT_WINDOW_S:
                self._times.popleft()
            if len(self._times) >= self.per_minute:
                return False
            self._times.append(now)
            return True


class DeepgramSTT:
    """Deepgram streaming recogniser: one websocket per utterance stream."""

    name = "deepgram"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = DEFAULT_MODEL,
        language: str = "en",
        endpointing_ms: int = DEFAULT_ENDPOINTING_MS,
        keyterms: Sequence[str] = (),
        base_url: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        final_timeout_s: float = FINAL_TIMEOUT_S,
        max_reconnects_per_utterance: int = MAX_RECONNECTS_PER_UTTERANCE,
        budget: ReconnectBudget | None = None,
    ):
        """
        Args:
            api_key: the Deepgram key (sent as ``Authorization: Token ...``).
            model, language, endpointing_ms: ``/v1/listen`` parameters.
            keyterms: domain words to boost (``keyterm`` on nova-3, ``keywords`` before).
            base_url: websocket base (``ws://127.0.0.1:port`` in tests); None: Deepgram's.
            connect_timeout_s, final_timeout_s: see the module constants.
            max_reconnects_per_utterance, budget: reconnect bounds (see the module doc).

        Raises:
            DeepgramError: ``deepgram-sdk`` is not installed (kind ``bad_request``).
        """
        try:
            from deepgram import DeepgramClient
            from deepgram.environment import DeepgramClientEnvironment
        except ImportError as exc:
            raise DeepgramError(
                ErrorKind.BAD_REQUEST,
                "deepgram-sdk is not installed: pip install 'deepgram-sdk>=7,<8' "
                "(or choose VC_STT_PROVIDER=pocketsphinx)",
            ) from exc
        kwargs: dict[str, Any] = {"api_key": api_key}
        if base_url:
            ws = base_url.rstrip("/")
            http = ws.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
            kwargs["environment"] = DeepgramClientEnvironment(
                base=http, production=ws, agent=ws, agent_rest=http
            )
        self._client = DeepgramClient(**kwargs)
        self.model = model
        self.keyterms = list(keyterms)
        self.params: dict[str, Any] = {
            "model": model,
            "language": language,
            "encoding": "linear16",
            "sample_rate": PIPELINE_SAMPLE_RATE_HZ,
            "channels": 1,
            "interim_results": "true",
            "endpointing": endpointing_ms,
            "punctuate": "true",
            "smart_format": "true",
        }
        if self.keyterms:
            if model.startswith("nova-3"):
                self.params["keyterm"] = self.keyterms
            else:
                self.params["keywords"] = self.keyterms
        self._socket_args: tuple[str, dict[str, str]] | None = None  # (url, headers)
        self.connect_timeout_s = connect_timeout_s
        self.final_timeout_s = final_timeout_s
        self.max_reconnects_per_utterance = max_reconnects_per_utterance
        self.budget = budget or ReconnectBudget()

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A live ``/v1/listen`` socket as the SDK's socket client (streams' worker threads).

        The URL, query and headers are the SDK's own (its encoders, its client's headers);
        only the socket is opened here, so that it does not offer permessage-deflate.
        ``websockets`` offers it by default and a server that accepts it has every audio
        frame deflated: 21 % of a cloud session's CPU in ``make bench``, for PCM that
        barely compresses. A refused handshake raises ``InvalidStatus``, which
        :func:`translate_error` reads (status, body, ``Retry-After``).
        """
        import urllib.parse

        from deepgram.core.jsonable_encoder import jsonable_encoder
        from deepgram.core.query_encoder import encode_query
        from deepgram.listen.v1.socket_client import V1SocketClient
        from websockets.sync.client import connect

        if self._socket_args is None:  # the SDK's headers look its version up on every call
            wrapper = self._client._client_wrapper
            url = wrapper.get_environment().production + "/v1/listen"
            query = encode_query(jsonable_encoder(self.params))
            if query:
                url += "?" + urllib.parse.urlencode(query)
            self._socket_args = (url, wrapper.get_headers())
        url, headers = self._socket_args
        # No pings: a socket lives for one utterance, and each would cost a keep-alive thread.
        with connect(url, additional_headers=headers, compression=None, ping_interval=None) as protocol:
            yield V1SocketClient(websocket=protocol)

    def open(self) -> DeepgramStream:
        return DeepgramStream(self)


class DeepgramStream:
    """One utterance streamed to Deepgram; results arrive on a worker thread."""

    def __init__(self, engine: DeepgramSTT):
        self._engine = engine
        self._lock = threading.Lock()
        self._audio: list[bytes] = []  # the whole utterance, for a reconnect's replay
        self._samples = 0
        self._conn: Any = None
        self._sent = 0  # chunks of _audio sent on the current connection
        self._unsent_bytes = 0
        self._finals: list[tuple[str, float, float]] = []  # (text, confidence, seconds)
        self._final_until_s = 0.0  # audio time (this connection) the finals reach
        self._interim = ""
        self._finishing = False
        self._closed = False
        self._error: DeepgramError | None = None
        self._connected = threading.Event()
        self._done = threading.Event()
        self._opened_at = time.monotonic()
        self.reconnects = 0
        self.connect_ms: float | None = None  # from open() to the end of the latest handshake
        # called (on the worker thread) after each final result: settled words may be there
        self.on_final: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="deepgram-stream", daemon=True)
        self._thread.start()

    # --- UtteranceStream (session thread) ----------------------------------------
    def accept(self, samples: Int16Array) -> None:
        if self._closed:
            raise DeepgramError(ErrorKind.BAD_REQUEST, "utterance stream already closed")
        data = np.asarray(samples, dtype=np.int16).astype("<i2", copy=False).tobytes()
        with self._lock:
            self._audio.append(data)
            self._samples += len(data) // 2
            self._unsent_bytes += len(data)
            if self._unsent_bytes >= _SEND_CHUNK_BYTES:
                self._flush_locked()

    def partial(self) -> str:
        with self._lock:
            return " ".join([*(t for t, _, _ in self._finals), self._interim]).strip()

    def settled_text(self, speech_end_ms: float) -> str | None:
        """The whole transcript when the finals already reach past ``speech_end_ms``
        (the caller is pausing and Deepgram has finalised what was said), else None."""
        with self._lock:
            return self._text_locked() if self._covers_locked(speech_end_ms) else None

    def _covers_locked(self, speech_end_ms: float | None) -> bool:
        return (
            speech_end_ms is not None
            and self._error is None
            and self._final_until_s * 1000.0 >= speech_end_ms + FINAL_COVER_MARGIN_MS
        )

    def _text_locked(self) -> str:
        return " ".join(t for t, _, _ in self._finals if t).strip()

    @property
    def final_until_ms(self) -> float:
        """How far into the utterance's audio Deepgram's final results reach."""
        with self._lock:
            return self._final_until_s * 1000.0

    def finish(self, speech_end_ms: float | None = None) -> Transcript:
        """The utterance's transcript: at once when the finals already cover the speech
        up to ``speech_end_ms`` (ms into the utterance's audio), else after a Finalize.

        Raises:
            DeepgramError: the stream failed, or no final arrived in time (``timeout``).
        """
        if self._closed:
            raise DeepgramError(ErrorKind.BAD_REQUEST, "utterance stream already closed")
        now = time.monotonic()
        with self._lock:
            self._finishing = True
            covered = self._covers_locked(speech_end_ms)
            if covered:
                self._close_locked()
            else:
                self._finalize_locked()
        if covered:
            self._done.set()  # nothing more to wait for; the socket closes behind us
        if not self._connected.is_set():  # still shaking hands: that has its own budget
            connect_deadline = self._opened_at + self._engine.connect_timeout_s
            while not (self._connected.is_set() or self._done.is_set()):
                left = connect_deadline - time.monotonic()
                if left <= 0:
                    break
                self._connected.wait(min(left, _POLL_S))
        if self._connected.is_set() and not covered:
            self._done.wait(self._engine.final_timeout_s)
        self._closed = True
        with self._lock:
            error, done = self._error, self._done.is_set()
            text = self._text_locked()
            seconds = sum(d for _, _, d in self._finals)
            confidence = (
                sum(c * d for _, c, d in self._finals) / seconds if self._finals and seconds else None
            )
        if error is not None:
            raise error
        if not done:
            what = "no final transcript" if self._connected.is_set() else "no connection"
            raise DeepgramError(
                ErrorKind.TIMEOUT, f"{what} within {time.monotonic() - now:.1f} s of the utterance end"
            )
        return Transcript(
            text=text,
            confidence=confidence,
            decode_ms=0.0,  # decoding runs at Deepgram: no local CPU to report
            audio_ms=self._samples * 1000.0 / PIPELINE_SAMPLE_RATE_HZ,
        )

    def cancel(self) -> None:
        """Drop the utterance: Deepgram is told to close; nothing is waited for."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to stop
                conn.send_close_stream()
        self._done.set()

    # --- worker thread -----------------------------------------------------------
    def _flush_locked(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            if self._sent < len(self._audio):
                conn.send_media(b"".join(self._audio[self._sent :]))
                self._sent = len(self._audio)
                self._unsent_bytes = 0
        except Exception as exc:  # the listener sees the close and decides on a reconnect
            log.debug("deepgram send failed: %s", exc)
            self._conn = None

    def _finalize_locked(self) -> None:
        self._flush_locked()  # the utterance's last audio, before Finalize
        conn = self._conn
        if conn is None:
            return
        try:
            conn.send_finalize()
            conn.send_close_stream()
        except Exception as exc:
            log.debug("deepgram finalize failed: %s", exc)
            self._conn = None

    def _close_locked(self) -> None:
        """Close without Finalize: the finals already hold the whole transcript."""
        conn = self._conn
        if conn is None:
            return
        try:
            conn.send_close_stream()
        except Exception as exc:  # the transcript is in hand; a dead socket loses nothing
            log.debug("deepgram close failed: %s", exc)
            self._conn = None

    def _run(self) -> None:
        attempts = 0
        while True:
            try:
                self._session()
                return
            except Exception as exc:
                error = translate_error(exc)
            if self._closed:  # cancelled, or finish() already gave up: nobody waits
                return
            retry = (
                error.kind in _RECONNECTABLE
                and not self._done.is_set()
                and attempts < self._engine.max_reconnects_per_utterance
                and self._engine.budget.take()
            )
            if not retry:
                with self._lock:
                    self._error = error
                self._done.set()
                return
            attempts += 1
            self.reconnects = attempts
            log.warning("deepgram stream lost, reconnecting: %s", error)

    def _session(self) -> None:
        from deepgram.core.events import EventType

        failure: list[BaseException] = []
        with self._engine.connect() as conn:
            if self._closed:  # cancelled while connecting
                conn.send_close_stream()
                return
            with self._lock:
                self._finals, self._interim, self._sent = [], "", 0
                self._final_until_s = 0.0
                self._conn = conn
                self._flush_locked()
                if self._finishing:
                    self._finalize_locked()
            self.connect_ms = (time.monotonic() - self._opened_at) * 1000.0
            self._connected.set()
            conn.on(EventType.MESSAGE, self._on_message)
            conn.on(EventType.ERROR, failure.append)
            conn.start_listening()  # returns when the socket closes
            with self._lock:
                self._conn = None
            close_code = getattr(conn._websocket, "close_code", None)
        if self._done.is_set():
            return
        if failure:
            raise failure[0]
        if close_code in ERROR_CLOSE_CODES:
            raise close_error(close_code, getattr(conn._websocket, "close_reason", ""))
        if self._finishing:
            self._done.set()  # closed cleanly after CloseStream: every final has arrived
            return
        raise DeepgramError(ErrorKind.CONNECTION, f"stream closed before the utterance ended ({close_code})")

    def _on_message(self, message: Any) -> None:
        kind = getattr(message, "type", None)
        if kind == "Results":
            try:
                alternatives = message.channel.alternatives
                text = str(alternatives[0].transcript).strip() if alternatives else ""
                final = (text, float(alternatives[0].confidence), float(message.duration)) if text else None
                until = float(message.start or 0.0) + float(message.duration or 0.0)
            except (AttributeError, IndexError, TypeError, ValueError) as exc:
                with self._lock:
                    self._error = DeepgramError(ErrorKind.MALFORMED, f"unexpected Results shape: {exc}")
                self._done.set()
                return
            with self._lock:
                if message.is_final:
                    if final is not None:
                        self._finals.append(final)
                    self._final_until_s = max(self._final_until_s, until)
                    self._interim = ""
                else:
                    self._interim = text
            if message.from_finalize and self._finishing:
                self._done.set()
            notify = self.on_final
            if message.is_final and notify is not None and not self._finishing:
                notify()
        elif kind == "Metadata":
            if self._finishing:
                self._done.set()
        elif kind == "Error":
            description = getattr(message, "description", "") or str(message)
            with self._lock:
                self._error = DeepgramError(ErrorKind.SERVER, f"error message: {description}")
            self._done.set()


def build_deepgram_stt(settings: Any, vocabulary: Sequence[str] = ()) -> DeepgramSTT:
    """The Deepgram engine configured from settings, boosting ``vocabulary``.

    Args:
        settings: :class:`core.config.Settings` (key, model, language, endpointing, base URL).
        vocabulary: domain texts (the pack's phrases, KB titles); the boosted keyterms are
            chosen from them with :func:`select_keyterms`.

    Raises:
        DeepgramError: no key (kind ``auth``) or the SDK is missing.
    """
    key = getattr(settings, "deepgram_api_key", None)
    if not key:
        raise DeepgramError(ErrorKind.AUTH, "DEEPGRAM_API_KEY is not set")
    return DeepgramSTT(
        key,
        model=settings.deepgram_model,
        language=settings.deepgram_language,
        endpointing_ms=settings.deepgram_endpointing_ms,
        keyterms=select_keyterms(vocabulary),
        base_url=settings.deepgram_base_url,
    )
