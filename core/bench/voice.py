"""Voice-agent benchmark on the offline stack, from audio, in real time.

``python -m core.bench.voice [--turns 50] [--json out.json]``

* **Voice-to-voice**: scripted caller turns (espeak-ng speech of the pack's
  conversations) are fed to a real session at real-time pace, as a microphone would;
  end of caller speech → first agent audio sample, split into endpointing silence,
  STT finalisation, reply first token and TTS first audio (from the stored turns).
* **False barge-ins**: while the agent answers (paced playback), the caller says
  backchannels ("mhm", "okay", "yeah", "right", "uh huh"); separately, the agent's own
  audio is fed back into the microphone (attenuated, delayed, as a speaker would leak).
  Any interruption is a false barge-in. A real interruption ("wait, stop, I have another
  question") is also played to check barge-in still works.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.bench.report import emit, pct
from core.config import Settings
from core.conversation.reply import Conversation
from core.conversation.voice_agent import VoiceAgent
from core.pipeline.mic import LeakyOut, Mic
from core.pipeline.session import VoiceSession
from core.services import Services, build_services
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ
from core.speech.tts.espeak import speak_16k
from core.store import TurnRecord

# the agent's turn and duration limits would say goodbye half-way through a long run
BENCH_MAX_TURNS = 10_000
BENCH_MAX_CALL_S = 24 * 3600.0
BACKCHANNELS = ["mhm", "okay", "yeah", "right", "uh huh"]


def _session(services: Services, paced: bool, echo_gain: float = 0.0, responder=None, tts=None):
    """A real agent session fed by a real-time :class:`Mic` (``responder``/``tts`` replace
    the configured ones, e.g. simulated cloud providers)."""
    out = LeakyOut()
    config = services.agent_config(
        greet=False, paced_playback=paced, max_turns=BENCH_MAX_TURNS, max_conversation_s=BENCH_MAX_CALL_S
    )
    if responder is None and tts is None:
        session = services.new_agent_session(out, source="bench", config=config)
        agent = services.agents[session.call_id or ""]
    else:
        session = VoiceSession(
            services.store, services.stt, services.endpointer_factory, source="bench",
            partial_interval_ms=services.settings.partial_interval_ms,
        )
        agent = VoiceAgent(
            session, responder or services.new_responder(), tts or services.tts, out,
            services.store, Conversation, config,
        )
        session.start()
        agent.start()
    mic = Mic(session, echo_gain=echo_gain)
    out.mic = mic
    mic.start()
    return session, agent, mic


def _wait(cond, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False



# figure name -> TurnRecord attribute
STAGES = {
    "endpointing_ms": "endpoint_ms",
    "stt_ms": "stt_ms",
    "reply_first_token_ms": "reply_first_token_ms",
    "tts_first_audio_ms": "tts_first_audio_ms",
    "voice_to_voice_ms": "voice_to_voice_ms",
}


def play_turns(
    services: Services,
    caller_turns: list[str],
    turns: int,
    before_turn: Callable[[int, str], None] | None = None,
    **session_kwargs,
) -> list[TurnRecord]:
    """Speak ``turns`` caller turns (cycling) into one agent session, each after the
    agent's previous answer; the stored per-turn records with their stage timings."""
    session, agent, mic = _session(services, paced=False, **session_kwargs)
    done = 0
    try:
        mic.say(np.zeros(PIPELINE_SAMPLE_RATE_HZ // 2, np.int16))
        for i, text in enumerate((caller_turns * (turns // len(caller_turns) + 1))[:turns]):
            if before_turn is not None:
                before_turn(i, text)
            mic.say(np.concatenate([speak_16k(text), np.zeros(PIPELINE_SAMPLE_RATE_HZ, np.int16)]))
            _wait(lambda: not mic.busy(), 30)
            _wait(lambda n=done: len(agent.turns) > n, 10)
            done = len(agent.turns)
    finally:
        mic.stop()
        session.stop()
    return [t for t in services.store.turns(session.call_id) if t.voice_to_voice_ms is not None]


def stage_figures(records: list[TurnRecord]) -> dict:
    """p50/p95 of each stage over ``records``."""
    stages = {
        name: [v for t in records if (v := getattr(t, attr)) is not None] for name, attr in STAGES.items()
    }
    return {
        "turns": len(records),
        **{f"{k}_p50": pct(v, 50) for k, v in stages.items()},
        **{f"{k}_p95": pct(v, 95) for k, v in stages.items()},
    }


def voice_to_voice(services: Services, caller_turns: list[str], turns: int) -> dict:
    return stage_figures(play_turns(services, caller_turns, turns))


def false_barge_ins(services: Services, questions: list[str], echo_gain: float) -> dict:
    """Backchannels while the agent talks (and its own voice leaking back at ``echo_gain``)."""
    session, agent, mic = _session(services, paced=True, echo_gain=echo_gain)
    events = 0
    try:
        mic.say(np.zeros(PIPELINE_SAMPLE_RATE_HZ // 2, np.int16))
        for i, question in enumerate(questions):
            before = len(agent.turns)
            mic.say(np.concatenate([speak_16k(question), np.zeros(PIPELINE_SAMPLE_RATE_HZ, np.int16)]))
            _wait(lambda: agent.speaking, 30)
            if echo_gain == 0.0:
                bc = BACKCHANNELS[i % len(BACKCHANNELS)]
                time.sleep(0.8)
                mic.say(np.concatenate([speak_16k(bc), np.zeros(PIPELINE_SAMPLE_RATE_HZ // 2, np.int16)]))
                events += 1
            else:
                events += 1
            _wait(lambda: not agent.speaking and not mic.busy(), 60)
            _wait(lambda b=before: len(agent.turns) > b, 10)
        interrupted = sum(t.interrupted for t in agent.turns)
        # a genuine interruption must still work
        mic.say(np.concatenate([speak_16k(questions[0]), np.zeros(PIPELINE_SAMPLE_RATE_HZ, np.int16)]))
        _wait(lambda: agent.speaking, 30)
        time.sleep(0.6)
        barge_before = agent.barge_ins
        mic.say(np.concatenate([speak_16k("wait stop i have another question about my card"),
                                np.zeros(PIPELINE_SAMPLE_RATE_HZ, np.int16)]))
        real_ok = _wait(lambda: agent.barge_ins > barge_before, 10)
    finally:
        mic.stop()
        session.stop()
    return {
        "agent_turns": len(questions),
        "opportunities": events,
        "false_barge_ins": interrupted,
        "guarded": agent.false_barge_ins_avoided,
        "real_barge_in_detected": bool(real_ok),
    }


def caller_turns_of(services: Services) -> list[list[str]]:
    """The caller turns of each of the pack's scripted conversations."""
    convs = yaml.safe_load((services.pack.root / "eval" / "conversations.yaml").read_text())["conversations"]
    return [list(c["caller_turns"]) for c in convs]


async def _reply(responder: Any, conversation: Conversation) -> str:
    return "".join([d async for d in responder.stream(conversation)])


def first_pieces(services: Services, caller_turns: list[str]) -> list[str]:
    """The first piece the agent would voice for each caller turn (as a turn cuts it)."""
    from core.conversation.chunker import SentenceChunker

    out = []
    for text in caller_turns:
        conversation = Conversation()
        conversation.add("caller", text)
        reply_text = asyncio.run(_reply(services.new_responder(), conversation))
        chunker = SentenceChunker()
        pieces = chunker.feed(reply_text) + chunker.flush()
        if pieces:
            out.append(VoiceAgent._said(pieces[0], continues=len(pieces) > 1))
    return out


def tts_first_audio(pieces: list[str], rounds: int = 3) -> dict:
    """Piper alone: first audio of a reply's first piece, cache bypassed, from the text to
    the first chunk. ``split``: the product (encoder, then the flow and decoder on the
    first span of frames); ``whole``: the first sentence rendered whole before its first
    sample (before the split). Interleaved piece by piece, so both see the same machine."""
    from core.speech.tts.piper import PiperTTS

    tts = PiperTTS(cache_size=0)

    async def first_chunk(text: str) -> float:
        started = time.perf_counter()
        async for _ in tts.stream(text):
            break
        return (time.perf_counter() - started) * 1000.0

    def whole(text: str) -> float:
        started = time.perf_counter()
        tts.render(tts.sentences(text)[0])
        return (time.perf_counter() - started) * 1000.0

    split_ms, whole_ms = [], []
    for _ in range(rounds):
        for text in pieces:
            split_ms.append(asyncio.run(first_chunk(text)))
            whole_ms.append(whole(text))
    ratio = [w / s for w, s in zip(whole_ms, split_ms, strict=True) if s > 0]
    return {
        "pieces": len(pieces), "rounds": rounds,
        "split_ms_p50": pct(split_ms, 50), "split_ms_p95": pct(split_ms, 95),
        "whole_ms_p50": pct(whole_ms, 50), "whole_ms_p95": pct(whole_ms, 95),
        "speedup_p50": pct(ratio, 50),
    }


def run(turns: int = 50, barge_questions: int = 8, echo_gain: float = 0.3, pack: Path | None = None) -> dict:
    """Voice-to-voice over ``turns`` turns and the false barge-in checks, on a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict = {"data_dir": tmp}
        if pack:
            overrides["pack_dir"] = pack
        services = build_services(Settings(**overrides))
        convs = caller_turns_of(services)
        caller_turns = [t for c in convs for t in c]
        questions = [c[0] for c in convs][:barge_questions]
        results = {"voice_to_voice": voice_to_voice(services, caller_turns, turns)}
        if services.settings.tts_provider == "piper":
            results["tts_first_audio"] = tts_first_audio(first_pieces(services, caller_turns))
        if barge_questions:
            results["backchannels"] = false_barge_ins(services, questions, 0.0)
            results["echo"] = false_barge_ins(services, questions, echo_gain)
        results["settings"] = {
            "end_of_utterance_silence_ms": services.settings.end_of_utterance_silence_ms,
            "barge_in_min_words": services.settings.barge_in_min_words,
            "echo_gain": echo_gain,
        }
        getattr(services.store, "close", lambda: None)()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--barge-questions", type=int, default=8)
    parser.add_argument("--echo-gain", type=float, default=0.3, help="leak level of agent audio (0.3 ≈ -10 dB)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--pack", type=Path)
    args = parser.parse_args(argv)
    results = run(args.turns, args.barge_questions, args.echo_gain, args.pack)
    v = results["voice_to_voice"]
    print(f"Voice-to-voice, offline stack, {v['turns']} turns fed in real time (ms)")
    print(f"{'stage':<24}{'p50':>8}{'p95':>8}")
    for stage in STAGES:
        p50, p95 = v[f"{stage}_p50"], v[f"{stage}_p95"]
        print(f"{stage[:-3]:<24}{p50 or 0:>8.0f}{p95 or 0:>8.0f}")
    if t := results.get("tts_first_audio"):
        print(f"Piper first audio of a first piece, alone ({t['pieces']} pieces × {t['rounds']}): "
              f"p50 {t['split_ms_p50']:.0f} / p95 {t['split_ms_p95']:.0f} ms; rendered whole first: "
              f"p50 {t['whole_ms_p50']:.0f} / p95 {t['whole_ms_p95']:.0f} ms ({t['speedup_p50']:.1f}× sooner)")
    for name in ("backchannels", "echo"):
        if name not in results:
            continue
        r = results[name]
        print(
            f"False barge-ins ({name}): {r['false_barge_ins']} of {r['opportunities']} agent turns "
            f"(guards stopped {r['guarded']}); real interruption detected: {r['real_barge_in_detected']}"
        )
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
