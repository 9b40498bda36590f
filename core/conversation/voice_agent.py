"""Turn-taking for the spoken agent: reply streaming, TTS streaming, barge-in, metrics.

The agent listens to a :class:`~core.pipeline.session.VoiceSession`'s events on the session's
own loop. A caller's final utterance starts a *turn*: reply text streams from the
responder, is cut into pieces at sentence/clause boundaries, each piece is
synthesised as soon as it is complete and its audio pushed to the output while the
next piece is still being written. Caller speech while the agent talks interrupts it
at once (output cleared, reply and TTS cancelled), unless it is a backchannel
("ok", "mhm") or the agent's own voice leaking back into the microphone.

Preemptive replies: when the recogniser has finalised the caller's words while the
caller pauses (:class:`~core.pipeline.events.SettledEvent`), the reply starts being written on
them, silently, while the end-of-utterance silence runs. If the utterance's final says
the same, the turn takes that reply over (the model has had a head start of up to the
silence); if the caller went on, the early reply is cancelled unheard and a new one
starts. Nothing is spoken before the end of the turn is decided.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.conversation.chunker import SentenceChunker
from core.conversation.reply import Responder
from core.ops.aio import close_quietly
from core.ops.observability import stage_span
from core.pipeline.events import FinalEvent, PartialEvent, SessionEvent, SettledEvent, SpeechStartedEvent
from core.pipeline.session import VoiceSession
from core.speech.audio import Int16Array, StreamResampler, int16_to_float
from core.speech.tts import TTSEngine, TTSError
from core.store import Store, StoreError, TurnRecord

log = logging.getLogger(__name__)

BACKCHANNELS = frozenset(
    ["ok", "okay", "mhm", "mm", "hmm", "uh", "huh", "yeah", "yep", "yes", "right", "sure", "alright", "got", "it", "i", "see", "cool", "great"]
)
OUTPUT_SAMPLE_RATE_HZ = 48_000
ECHO_OVERLAP = 0.6  # share of heard words found in what the agent is saying
_CLOSING_MARKS = tuple(".,;:!?\u2014\"')")


class AudioOut(Protocol):
    """Where agent audio goes (``PcmAudioSource`` from streamlit-webrtc fits)."""

    def push(self, pcm: Int16Array) -> None: ...
    def clear(self) -> None: ...


@dataclass(frozen=True)
class AgentConfig:
    barge_in_min_words: int = 2
    max_turns: int = 40
    max_conversation_s: float = 900.0
    output_rate_hz: int = OUTPUT_SAMPLE_RATE_HZ
    greet: bool = True
    # False when the output consumes audio as fast as it is pushed (batch runs, tests):
    # then the agent is "speaking" only while it is producing a reply.
    paced_playback: bool = True
    # start writing the reply on the recogniser's settled words, before the turn ends
    preemptive_reply: bool = True
    closing_line: str = "We have reached the limit for this call. Thank you for calling, goodbye."


@dataclass
class _Turn:
    index: int
    caller_text: str
    caller_segment_id: int | None
    speech_end_at: float
    endpoint_ms: float
    stt_ms: float
    started_at: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    first_piece_at: float | None = None
    first_audio_at: float | None = None
    spoken: list[str] = field(default_factory=list)
    audio_samples: int = 0
    t_start_ms: float | None = None
    interrupted: bool = False


@dataclass
class _Preemptive:
    """A reply being written, unheard, to words the caller may not have finished."""

    caller_text: str
    conversation: Any  # the call's conversation plus the caller's words
    base_turns: int  # turns in the call's conversation when it started
    deltas: asyncio.Queue[str | BaseException | None] = field(default_factory=asyncio.Queue)
    first_token_at: float | None = None
    task: asyncio.Task[None] | None = None
    started_at: float = field(default_factory=time.monotonic)
    written: int = 0  # deltas the model has produced
    voicing: Any = None  # the first piece being synthesised ahead (False: the voice cannot)


def words_of(text: str) -> list[str]:
    return [w.strip(".,?!").lower() for w in text.split() if w.strip(".,?!")]


def is_backchannel(text: str) -> bool:
    w = words_of(text)
    return bool(w) and all(x in BACKCHANNELS for x in w) and len(w) <= 3


class VoiceAgent:
    """Speaks replies into ``audio_out`` for one session."""

    def __init__(
        self,
        session: VoiceSession,
        responder: Responder,
        tts: TTSEngine,
        audio_out: AudioOut,
        store: Store,
        conversation_factory: Callable[[], Any],
        config: AgentConfig | None = None,
    ):
        self.session = session
        self.responder = responder
        self.tts = tts
        self.out = audio_out
        self.store = store
        self.config = config or AgentConfig()
        self.conversation = conversation_factory()
        self._task: asyncio.Task[None] | None = None
        self._turn: _Turn | None = None
        self._preemptive: _Preemptive | None = None
        self.preemptive_used = 0  # replies taken over from a preemptive start
        self.preemptive_dropped = 0  # ... cancelled because the caller went on
        self._playing_until = 0.0
        self._speaking_text = ""
        self._turn_index = 0
        self._started = time.monotonic()
        self._closed = False
        self.turns: list[TurnRecord] = []
        self.false_barge_ins_avoided = 0
        self.barge_ins = 0
        session.add_listener(self.on_event)

    # --- state ----------------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        running = self._task is not None and not self._task.done()
        return running or time.monotonic() < self._playing_until

    def start(self) -> None:
        """Greet the caller (call once the session loop runs)."""
        if self.config.greet:
            self.session.call_soon(self._begin_greeting)

    def _begin_greeting(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._speak_greeting())

    # --- events (session loop thread) -----------------------------------------------
    def on_event(self, event: SessionEvent) -> None:
        if self._closed:
            return
        if isinstance(event, SpeechStartedEvent):
            return  # wait for words: a cough or a click must not interrupt
        if isinstance(event, SettledEvent):
            if self.config.preemptive_reply and not self.speaking:
                self._start_preemptive(event.text)
            return
        if isinstance(event, PartialEvent):
            if self.speaking and self._qualifies_as_barge_in(event.text):
                self.barge_in()
            return
        if isinstance(event, FinalEvent) and event.segment.speaker == "caller":
            text = event.segment.text
            if self.speaking and (is_backchannel(text) or self._is_echo(text)):
                self.false_barge_ins_avoided += 1
                return
            if self.speaking:
                self.barge_in()
            self._start_turn(event)

    def _qualifies_as_barge_in(self, heard: str) -> bool:
        w = [x for x in words_of(heard) if x not in BACKCHANNELS]
        if len(w) < self.config.barge_in_min_words:
            return False
        if self._is_echo(heard):
            self.false_barge_ins_avoided += 1
            return False
        return True

    def _is_echo(self, heard: str) -> bool:
        heard_words = words_of(heard)
        if not heard_words or not self._speaking_text:
            return False
        said = set(words_of(self._speaking_text))
        return sum(w in said for w in heard_words) / len(heard_words) >= ECHO_OVERLAP

    def barge_in(self) -> None:
        """Caller spoke over the agent: silence it now and drop the rest of the reply."""
        self.barge_ins += 1
        self.out.clear()
        self._playing_until = 0.0
        if self._turn is not None:
            self._turn.interrupted = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        log.info("barge-in", extra={"call_id": self.session.call_id})

    # --- turns ----------------------------------------------------------------------
    def _start_turn(self, event: FinalEvent) -> None:
        now = time.monotonic()
        timing = event.timing
        self._turn_index += 1
        turn = _Turn(
            index=self._turn_index,
            caller_text=event.segment.text,
            caller_segment_id=event.segment.id or None,
            speech_end_at=now - timing.speech_end_to_final_ms / 1000.0,
            endpoint_ms=timing.endpoint_ms,
            stt_ms=timing.stt_finalize_ms,
        )
        over = self._turn_index > self.config.max_turns or (
            now - self._started > self.config.max_conversation_s
        )
        early = None if over else self._take_preemptive(event.segment.text)
        if self._preemptive is not None:  # the closing line is said instead
            self._drop_preemptive(self._preemptive)
        if early is not None:
            self.conversation = early.conversation  # holds the caller's turn already
        else:
            self.conversation.add("caller", event.segment.text)
        self._task = asyncio.get_running_loop().create_task(self._run_turn(turn, closing=over, early=early))

    # --- preemptive replies ---------------------------------------------------------
    def _start_preemptive(self, caller_text: str) -> None:
        if self._preemptive is not None:
            if self._preemptive.caller_text == caller_text:
                return
            self._drop_preemptive(self._preemptive)
        conversation = copy.copy(self.conversation)
        conversation.turns = list(self.conversation.turns)
        conversation.add("caller", caller_text)
        early = _Preemptive(caller_text, conversation, len(self.conversation.turns))
        early.task = asyncio.get_running_loop().create_task(self._write_preemptive(early))
        self._preemptive = early

    async def _write_preemptive(self, early: _Preemptive) -> None:
        stream = self.responder.stream(early.conversation)
        chunker = SentenceChunker()  # cuts as the turn will: its first piece is voiced ahead
        try:
            async for delta in stream:
                if early.first_token_at is None:
                    early.first_token_at = time.monotonic()
                early.written += 1
                early.deltas.put_nowait(delta)
                if early.voicing is None:
                    for piece in chunker.feed(delta)[:1]:
                        self._voice_ahead(early, self._said(piece, continues=True))
            early.deltas.put_nowait(None)
            if early.voicing is None:
                for piece in chunker.flush()[:1]:
                    self._voice_ahead(early, self._said(piece, continues=False))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the turn, which reports it as its own failure
            early.deltas.put_nowait(exc)
        finally:
            await close_quietly(stream)

    def _voice_ahead(self, early: _Preemptive, said: str) -> None:
        """Synthesise the first piece of a preemptive reply now, into the voice's phrase
        cache, so that when the turn is taken its audio starts at once (an embedded voice:
        Piper needs ~20 ms per word before its first sample). Nothing is played."""
        prepare = getattr(self.tts, "prepare", None)
        if prepare is None:
            early.voicing = False
            return

        def run() -> None:
            try:
                prepare(said)
            except Exception as exc:  # the turn synthesises it again, reporting any failure
                log.info("could not voice a reply ahead", extra={"error": str(exc)})

        early.voicing = asyncio.get_running_loop().run_in_executor(None, run)

    def _take_preemptive(self, caller_text: str) -> _Preemptive | None:
        """The preemptive reply if it answers exactly ``caller_text`` (and nothing was
        added to the conversation since it started), else None (it is dropped)."""
        early, self._preemptive = self._preemptive, None
        if early is None:
            return None
        if early.caller_text == caller_text and early.base_turns == len(self.conversation.turns):
            self.preemptive_used += 1
            self._record_preemptive(early, "used")
            return early
        self._drop_preemptive(early)
        return None

    def _drop_preemptive(self, early: _Preemptive) -> None:
        self.preemptive_dropped += 1
        if early.task is not None:
            early.task.cancel()
        if self._preemptive is early:
            self._preemptive = None
        self._record_preemptive(early, "dropped")

    def _record_preemptive(self, early: _Preemptive, outcome: str) -> None:
        """A ``preemptive_reply`` event: how often early replies are used or thrown away
        (a dropped one is a model request whose output nobody hears)."""
        payload = {
            "outcome": outcome,
            "head_start_ms": round((time.monotonic() - early.started_at) * 1000.0, 1),
            "deltas_written": early.written,
        }
        try:
            self.store.add_event(self.session.call_id or "", "preemptive_reply", payload)
        except StoreError as exc:
            log.warning("could not save a preemptive reply event", extra={"error": str(exc)})

    @staticmethod
    async def _replay(early: _Preemptive) -> AsyncIterator[str]:
        while (item := await early.deltas.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def _speak_greeting(self) -> None:
        turn = _Turn(0, "", None, time.monotonic(), 0.0, 0.0)
        text = self.responder.greeting()
        turn.first_token_at = time.monotonic()
        await self._speak_piece(turn, text)
        self.conversation.add("agent", text)
        self._persist_agent(turn)

    async def _run_turn(self, turn: _Turn, closing: bool, early: _Preemptive | None = None) -> None:
        self._turn = turn
        try:
            if closing:
                turn.first_token_at = time.monotonic()
                await self._speak_piece(turn, self.config.closing_line)
                self._closed = True
            else:
                chunker = SentenceChunker()
                stream = self._replay(early) if early is not None else self.responder.stream(self.conversation)
                try:
                    async for delta in stream:
                        if turn.first_token_at is None:
                            now = time.monotonic()
                            # a preemptive reply may have had its first token before the turn began
                            turn.first_token_at = max(turn.started_at, early.first_token_at or now) if early else now
                        for piece in chunker.feed(delta):
                            await self._speak_piece(turn, piece, continues=True)
                    for piece in chunker.flush():
                        await self._speak_piece(turn, piece)
                finally:
                    await close_quietly(stream)
                    if early is not None and early.task is not None:
                        early.task.cancel()  # interrupted: stop the model writing the rest
        except asyncio.CancelledError:
            turn.interrupted = True
        except (TTSError, Exception) as exc:  # a failed reply must not end the call
            log.warning("reply failed", extra={"call_id": self.session.call_id, "error": str(exc)})
            self.session.report_error(f"the agent could not reply: {exc}")
        finally:
            if turn.spoken:
                self.conversation.add("agent", " ".join(turn.spoken))
            self._finish_turn(turn)
            self._turn = None

    async def _speak_piece(self, turn: _Turn, piece: str, continues: bool = False) -> None:
        """Synthesise one piece and push its audio; ``continues``: more of the reply follows.

        A piece cut before a phrase (no closing mark) is spoken with a comma after it, so
        the voice pauses as if mid-sentence rather than ending the sentence; what is
        stored as said stays the text itself.
        """
        if turn.first_piece_at is None:
            turn.first_piece_at = time.monotonic()
        self._speaking_text = (self._speaking_text + " " + piece)[-2000:]
        said = self._said(piece, continues)
        resampler = StreamResampler(self.config.output_rate_hz)
        with stage_span("tts", self.session.call_id, characters=len(piece)):
            async for chunk in self.tts.stream(said, " ".join(turn.spoken)):
                pcm = resampler.process(int16_to_float(chunk), self.tts.sample_rate_hz)
                self._push(turn, pcm)
        self._push(turn, resampler.flush())
        turn.spoken.append(piece)

    @staticmethod
    def _said(piece: str, continues: bool) -> str:
        return piece + "," if continues and not piece.endswith(_CLOSING_MARKS) else piece

    def _push(self, turn: _Turn, pcm: Int16Array) -> None:
        if pcm.size == 0:
            return
        now = time.monotonic()
        if turn.first_audio_at is None:
            turn.first_audio_at = now
            turn.t_start_ms = self.session.stream_ms
        self.out.push(pcm)
        turn.audio_samples += pcm.size
        if self.config.paced_playback:
            duration = pcm.size / self.config.output_rate_hz
            self._playing_until = max(self._playing_until, now) + duration

    # --- persistence ----------------------------------------------------------------
    def _persist_agent(self, turn: _Turn) -> int | None:
        if not turn.spoken or turn.t_start_ms is None:
            return None
        text = " ".join(turn.spoken)
        duration_ms = turn.audio_samples * 1000.0 / self.config.output_rate_hz
        try:
            seg = self.store.add_segment(
                self.session.call_id or "", "agent", text, turn.t_start_ms, turn.t_start_ms + duration_ms
            )
        except StoreError as exc:
            self.session.report_error(f"could not save the agent's line: {exc}")
            return None
        self.session.add_segment_to_snapshot(seg)
        return seg.id

    def _finish_turn(self, turn: _Turn) -> None:
        agent_segment_id = self._persist_agent(turn)

        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else (b - a) * 1000.0

        record = TurnRecord(
            call_id=self.session.call_id or "",
            turn_index=turn.index,
            caller_segment_id=turn.caller_segment_id,
            agent_segment_id=agent_segment_id,
            caller_text=turn.caller_text,
            agent_text=" ".join(turn.spoken),
            endpoint_ms=turn.endpoint_ms,
            stt_ms=turn.stt_ms,
            reply_first_token_ms=ms(turn.started_at, turn.first_token_at),
            tts_first_audio_ms=ms(turn.first_piece_at, turn.first_audio_at),
            voice_to_voice_ms=ms(turn.speech_end_at, turn.first_audio_at),
            interrupted=turn.interrupted,
        )
        self.turns.append(record)
        try:
            self.store.add_turn(record)
        except StoreError as exc:
            self.session.report_error(f"could not save turn metrics: {exc}")
