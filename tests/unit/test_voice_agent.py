import time

import numpy as np

from core.conversation.chunker import SentenceChunker
from core.conversation.voice_agent import AgentConfig, VoiceAgent, is_backchannel
from core.pipeline.events import FinalEvent
from core.pipeline.session import VoiceSession
from core.pipeline.vad import EndpointConfig, Endpointer, EnergyFrameClassifier
from tests.conftest import silence, tone
from tests.fakes import FakeAudioOut, FakeConversation, FakeResponder, FakeSTT, FakeTTS

CFG = EndpointConfig(speech_start_ms=60, end_of_utterance_silence_ms=300, min_speech_ms=150, pre_roll_ms=150)


def make(store, stt, responder, tts, config=None):
    session = VoiceSession(store, stt, lambda: Endpointer(CFG, EnergyFrameClassifier(-35)), partial_interval_ms=60)
    out = FakeAudioOut()
    agent = VoiceAgent(session, responder, tts, out, store, FakeConversation,
                       config or AgentConfig(greet=False, output_rate_hz=16000))
    session.start()
    agent.start()
    return session, agent, out


def play(session, audio, realtime=True):
    chunk = 320
    for i in range(0, audio.size, chunk):
        session.push_pcm(audio[i : i + chunk])
        if realtime:
            time.sleep(chunk / 16000)
    session.wait_idle(10)


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_chunker_cuts_sentences_and_long_clauses_only():
    c = SentenceChunker()
    out = []
    text = "Yes, I can. Your card, the debit one, is frozen now, and a new card will arrive in five days. Anything else?"
    for w in text.split(" "):
        out += c.feed(w + " ")
    out += c.flush()
    assert out == [
        "Yes, I can.",
        "Your card, the debit one, is frozen now,",
        "and a new card will arrive in five days.",
        "Anything else?",
    ]


def _streamed(text: str) -> list[str]:
    c = SentenceChunker()
    out = []
    for i, w in enumerate(text.split(" ")):
        out += c.feed(w if i == 0 else " " + w)  # as a language model streams: " word"
    return out + c.flush()


def test_a_run_on_first_sentence_is_cut_before_a_phrase_opener():
    text = "I can open the transaction list and look at the status of both charges. Very often one is pending."
    assert _streamed(text) == [
        "I can open the transaction list",
        "and look at the status of both charges.",
        "Very often one is pending.",
    ]
    # only the first piece: later run-on sentences wait for their marks
    assert _streamed("Sure. I can give you the dispute reference number and let you know.") == [
        "Sure.", "I can give you the dispute reference number and let you know."
    ]
    # at least four words before the cut, and the opener must be a whole word
    assert _streamed("I want to andorra now.") == ["I want to andorra now."]
    assert _streamed("Please go to the branch.") == ["Please go to the branch."]


def test_text_arriving_at_once_is_cut_at_its_marks_and_a_long_opening_at_a_phrase():
    c = SentenceChunker()
    text = "I can open the transaction list and look at the status. Very often one is pending, and it drops. "
    assert c.feed(text) == [
        "I can open the transaction list", "and look at the status.", "Very often one is pending, and it drops.",
    ]
    # an opening sentence of eight words or fewer stays whole
    assert SentenceChunker().feed("Your card is frozen and safe. Anything else? ") == [
        "Your card is frozen and safe.", "Anything else?",
    ]


def test_backchannel_detection():
    assert is_backchannel("ok") and is_backchannel("mhm yeah") and is_backchannel("uh huh")
    assert not is_backchannel("ok but my card is lost") and not is_backchannel("")


def test_reply_is_spoken_and_both_sides_are_stored_with_metrics(store):
    responder = FakeResponder("Sure. I can block your card right now.")
    session, agent, out = make(store, FakeSTT(["my card is lost"]), responder, FakeTTS(0.05))
    play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6)]))
    assert wait_for(lambda: len(agent.turns) == 1)
    session.stop()
    segs = store.segments(session.call_id)
    assert [(s.speaker, s.text) for s in segs] == [
        ("caller", "my card is lost"),
        ("agent", "Sure. I can block your card right now."),
    ]
    assert segs[1].t_start_ms >= segs[0].t_end_ms
    turn = store.turns(session.call_id)[0]
    assert not turn.interrupted and turn.agent_segment_id == segs[1].id
    assert turn.voice_to_voice_ms is not None and turn.voice_to_voice_ms > 0
    assert turn.reply_first_token_ms is not None and turn.tts_first_audio_ms is not None
    # streamed: the first sentence's audio went out before the reply was finished
    assert out.pushed_samples > 0


def test_a_phrase_cut_is_voiced_as_a_pause_and_stored_as_written(store):
    reply = "I can open the transaction list and look at the status of both charges."
    responder = FakeResponder(reply, delay_s=0.01)
    tts = FakeTTS(0.02)
    session, agent, out = make(store, FakeSTT(["two charges"]), responder, tts)
    play(session, np.concatenate([silence(0.3), tone(300, 0.6), silence(0.5)]))
    assert wait_for(lambda: len(agent.turns) == 1)
    session.stop()
    assert tts.texts == ["I can open the transaction list,", "and look at the status of both charges."]
    assert tts.previous_texts == ["", "I can open the transaction list"]
    assert store.segments(session.call_id)[-1].text == reply


def test_a_reply_started_on_settled_words_is_taken_over_and_spoken_only_after_the_final(store):
    # the reply is written while the end-of-utterance silence runs (30 ms a word: it
    # is finished long before the 300 ms are over), then spoken once the turn is final
    responder = FakeResponder("Sure. I can block your card right now.", delay_s=0.03)
    stt = FakeSTT(["my card is lost"], settled=True)
    session, agent, out = make(store, stt, responder, FakeTTS(0.02))
    finals: list[float] = []
    session.add_listener(lambda e: finals.append(time.monotonic()) if isinstance(e, FinalEvent) else None)
    play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6)]))
    assert wait_for(lambda: len(agent.turns) == 1)
    session.stop()
    assert (responder.calls, agent.preemptive_used, agent.preemptive_dropped) == (1, 1, 0)
    first_push = next(t for kind, t, _ in out.log if kind == "push")
    assert first_push >= finals[0]  # nothing was heard before the turn was decided
    [event] = store.events(session.call_id, "preemptive_reply")
    assert event.payload["outcome"] == "used" and 0 < event.payload["head_start_ms"] < 1000
    turn = store.turns(session.call_id)[0]
    assert turn.agent_text == "Sure. I can block your card right now."
    assert turn.reply_first_token_ms == 0.0  # the first word was written before the turn began
    assert agent.conversation.turns == [("caller", "my card is lost"), ("agent", turn.agent_text)]


class PreparingTTS(FakeTTS):
    """A voice with a phrase cache: ``prepare`` synthesises ahead (slowly), ``stream``
    then starts at once for that text."""

    def __init__(self, prepare_s: float = 0.1):
        super().__init__(0.02)
        self.prepare_s = prepare_s
        self.prepared: list[str] = []
        self.stream_waits: list[float] = []

    def prepare(self, text: str) -> None:
        time.sleep(self.prepare_s)
        self.prepared.append(text)

    async def stream(self, text: str, previous_text: str = ""):
        if text not in self.prepared:  # not cached: it costs what prepare costs
            import asyncio

            await asyncio.sleep(self.prepare_s)
        async for chunk in super().stream(text, previous_text):
            yield chunk


def test_the_first_piece_of_a_reply_written_in_the_pause_is_voiced_ahead(store):
    responder = FakeResponder("I can open the transaction list and look at the status of both charges.")
    stt = FakeSTT(["two charges"], settled=True)
    tts = PreparingTTS(prepare_s=0.1)
    session, agent, out = make(store, stt, responder, tts)
    play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6)]))
    assert wait_for(lambda: len(agent.turns) == 1)
    session.stop()
    assert tts.prepared == ["I can open the transaction list,"]  # as the turn says it
    assert tts.texts == ["I can open the transaction list,", "and look at the status of both charges."]
    turn = store.turns(session.call_id)[0]
    assert turn.tts_first_audio_ms is not None and turn.tts_first_audio_ms < 50  # not the 100 ms synthesis


def test_a_reply_started_on_words_the_caller_went_on_from_is_dropped_unheard(store):
    responder = FakeResponder(replies=["You lost your card?", "I have blocked your card."], delay_s=0.01)
    stt = FakeSTT(["my card is lost please block it"], settled=["my card is lost"])
    tts = FakeTTS(0.02)
    session, agent, out = make(store, stt, responder, tts)
    play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6)]))
    assert wait_for(lambda: len(agent.turns) == 1)
    session.stop()
    assert (responder.calls, agent.preemptive_used, agent.preemptive_dropped) == (2, 0, 1)
    [event] = store.events(session.call_id, "preemptive_reply")
    assert event.payload["outcome"] == "dropped"
    turn = store.turns(session.call_id)[0]
    assert turn.agent_text == "I have blocked your card."
    assert tts.texts == ["I have blocked your card."]  # the early reply was never voiced
    assert agent.conversation.turns == [
        ("caller", "my card is lost please block it"), ("agent", "I have blocked your card.")
    ]


def test_no_preemptive_reply_when_turned_off(store):
    responder = FakeResponder("Sure.")
    cfg = AgentConfig(greet=False, output_rate_hz=16000, preemptive_reply=False)
    session, agent, out = make(store, FakeSTT(["my card is lost"], settled=True), responder, FakeTTS(0.02), cfg)
    play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6)]))
    assert wait_for(lambda: len(agent.turns) == 1)
    session.stop()
    assert (responder.calls, agent.preemptive_used, agent.preemptive_dropped) == (1, 0, 0)


def test_audio_starts_before_the_reply_is_finished(store):
    responder = FakeResponder("Sure. " + "word " * 30, delay_s=0.02)
    session, agent, out = make(store, FakeSTT(["hello"]), responder, FakeTTS(0.02))
    play(session, np.concatenate([silence(0.3), tone(300, 0.6), silence(0.5)]))
    assert wait_for(lambda: out.pushed_samples > 0, 5)
    assert responder.deltas_produced < 31  # first audio pushed while words still coming
    assert wait_for(lambda: len(agent.turns) == 1)
    session.stop()


def test_barge_in_stops_audio_reply_and_tts_at_once(store):
    long_reply = " ".join(["This is a long answer that keeps going."] * 20)
    responder = FakeResponder(delay_s=0.01, replies=[long_reply, ""])
    tts = FakeTTS(0.3)  # 0.3 s of audio per word: the agent is talking for a long time
    stt = FakeSTT(["my card is lost", "wait stop please"])
    session, agent, out = make(store, stt, responder, tts)
    play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.6)]))
    assert wait_for(lambda: agent.speaking and out.pushed_samples > 0, 5)
    play(session, np.concatenate([tone(500, 0.8), silence(0.6)]))  # caller talks over the agent
    assert wait_for(lambda: any(e[0] == "clear" for e in out.log), 5)
    produced_at_clear = responder.per_stream[0]
    chunks_at_clear = tts.chunks_produced
    time.sleep(0.5)
    interrupted = store.turns(session.call_id)[0]
    assert interrupted.interrupted and len(interrupted.agent_text) < len(long_reply)
    # nothing more of the interrupted reply: no further tokens, no TTS, no audio after clear
    assert responder.per_stream[0] - produced_at_clear <= 1
    assert responder.per_stream[0] < len(long_reply.split())
    assert responder.closed >= 1
    assert tts.chunks_produced - chunks_at_clear <= 1
    assert out.pushes_after_last_clear() == 0
    session.stop()


def test_backchannel_and_echo_do_not_interrupt(store):
    reply = "Your replacement card will arrive within five business days at your home address."
    responder = FakeResponder(reply)
    tts = FakeTTS(0.35)  # ~4.5 s of agent speech
    stt = FakeSTT(["my card is lost", "mhm", "card will arrive within five"])
    session, agent, out = make(store, stt, responder, tts)
    play(session, np.concatenate([silence(0.3), tone(300, 0.8), silence(0.5)]))
    assert wait_for(lambda: out.pushed_samples > 0, 5)
    play(session, np.concatenate([tone(400, 0.3), silence(0.5)]))  # "mhm"
    play(session, np.concatenate([tone(450, 0.8), silence(0.5)]))  # the agent's own voice
    assert not any(e[0] == "clear" for e in out.log)
    assert agent.false_barge_ins_avoided >= 2
    assert wait_for(lambda: len(agent.turns) == 1, 10)
    assert not store.turns(session.call_id)[0].interrupted
    session.stop()


def test_reply_failure_is_reported_and_call_continues(store):
    responder = FakeResponder(error="model unavailable")
    session, agent, out = make(store, FakeSTT(["hello", "hello again"]), responder, FakeTTS(0.01))
    play(session, np.concatenate([silence(0.3), tone(300, 0.6), silence(0.5)]))
    assert wait_for(lambda: len(agent.turns) == 1)
    assert any("could not reply" in e for e in session.snapshot().errors)
    session.stop()
    assert store.get_call(session.call_id).status == "ended"


def test_greeting_and_max_turns_guard(store):
    responder = FakeResponder("Fine.", greeting="Hi, this is Nora.")
    cfg = AgentConfig(greet=True, max_turns=1, output_rate_hz=16000, closing_line="Goodbye now.")
    # with settled words: the second turn's early reply is dropped for the closing line
    session, agent, out = make(store, FakeSTT(["one", "two"], settled=True), responder, FakeTTS(0.01), cfg)
    assert wait_for(lambda: out.pushed_samples > 0, 5)
    play(session, np.concatenate([silence(0.3), tone(300, 0.6), silence(0.6)]))
    assert wait_for(lambda: len(agent.turns) == 1)
    play(session, np.concatenate([tone(300, 0.6), silence(0.6)]))
    assert wait_for(lambda: len(agent.turns) == 2)
    session.stop()
    agent_lines = [s.text for s in store.segments(session.call_id) if s.speaker == "agent"]
    assert agent_lines == ["Hi, this is Nora.", "Fine.", "Goodbye now."]
    assert (agent.preemptive_used, agent.preemptive_dropped) == (1, 1)
