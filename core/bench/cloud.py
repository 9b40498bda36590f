"""Voice-to-voice with simulated cloud providers: what our pipeline adds on top of them.

``python -m core.bench.cloud [--turns 50] [--json out.json]``

The caller turns are spoken (espeak-ng) into a real session at real-time pace, as in
:mod:`core.bench.voice`; STT is the Deepgram adapter against
:class:`~core.bench.simulated.SimulatedDeepgram`, TTS the ElevenLabs adapter against
:class:`~core.bench.simulated.SimulatedElevenLabs`, and the reply comes from the
product's LLM chain (``VC_LLM_PROVIDER=openai``: the OpenAI adapter, its breaker and
retries, the embedded responder behind it) against
:class:`~core.bench.simulated.SimulatedOpenAI`, which streams the offline responder's
reply to each caller turn word by word. Before each turn one set of
provider delays is drawn (:class:`~core.bench.simulated.LatencyProfile`) and injected.
The STT final comes its delay after the speech ends, as Deepgram's endpointing sends
it, so it usually lands inside the end-of-utterance silence, and the agent starts its
reply on it (a preemptive reply, taken over when the silence confirms the turn); audio
can only play once the silence is over. So the providers' own path is
``max(silence, STT + LLM + TTS)`` and per turn::

    overhead = voice-to-voice − max(end-of-utterance silence, STT + LLM + TTS delays)

is the time our own code (endpointing beyond the silence, session and agent hand-offs,
the adapters and SDKs, chunking, resampling) adds to the providers'; the wait for the
model to write the first phrase is reported with it and on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from core.bench.report import emit, pct
from core.bench.simulated import (
    Delays,
    LatencyProfile,
    SimulatedDeepgram,
    SimulatedElevenLabs,
    SimulatedOpenAI,
)
from core.bench.voice import caller_turns_of, play_turns, stage_figures
from core.config import Settings
from core.conversation.reply import Conversation
from core.providers.deepgram_stt import DeepgramSTT
from core.providers.elevenlabs_tts import ElevenLabsTTS
from core.services import build_services

SIMULATED_KEY = "simulated"
WARMUP_TURNS = 1  # the process's first turn pays one-off set-up (SDK clients, imports)



def run(turns: int = 50, seed: int = 0, scale: float = 1.0) -> dict[str, Any]:
    """Voice-to-voice over ``turns`` turns with simulated providers, and the overhead.

    Args:
        scale: multiplies every injected delay (0: providers answer at once).
    """
    profile = LatencyProfile(seed, scale)
    injected: dict[int, tuple[str, Delays]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimulatedDeepgram(final_on="speech_end") as dg,
        SimulatedElevenLabs() as xi,
        SimulatedOpenAI() as llm,
    ):
        settings = Settings(data_dir=Path(tmp), llm_provider="openai", openai_api_key=SIMULATED_KEY,
                            openai_base_url=llm.base_url)
        services = build_services(settings, stt=DeepgramSTT(SIMULATED_KEY, base_url=dg.url))
        responder, conversation = services.embedded_responder(), Conversation()

        def reply_for(text: str) -> str:  # what the simulated LLM says: the offline reply
            conversation.add("caller", text)
            reply = asyncio.run(responder.reply_text(conversation))
            conversation.add("agent", reply)
            return reply

        llm.reply_for = reply_for
        tts = ElevenLabsTTS(SIMULATED_KEY, base_url=xi.url)

        def before_turn(i: int, text: str) -> None:
            delays = profile.draw()
            injected[i + 1] = (text, delays)
            dg.transcript, dg.final_delay_ms = text, delays.stt_ms
            llm.first_token_ms, xi.first_audio_ms = delays.llm_ms, delays.tts_ms

        caller_turns = [t for c in caller_turns_of(services) for t in c]
        records = play_turns(services, caller_turns, turns, before_turn, tts=tts)
        silence_ms = float(settings.end_of_utterance_silence_ms)
        llm_requests = llm.requests
        getattr(services.store, "close", lambda: None)()
    clause_wait, without_clause = [], []
    records = [r for r in records if r.turn_index > WARMUP_TURNS]
    overhead, stt_extra, llm_extra, tts_extra, endpoint_extra = [], [], [], [], []
    for r in records:
        text, d = injected.get(r.turn_index, ("", None))
        if d is None or r.caller_text != text or r.voice_to_voice_ms is None:
            continue  # a spurious utterance (not the turn we scripted): no known injection
        overhead.append(r.voice_to_voice_ms - max(silence_ms, d.total_ms))
        stages = (r.endpoint_ms, r.stt_ms, r.reply_first_token_ms, r.tts_first_audio_ms)
        if all(v is not None for v in stages):
            # first token → first piece to TTS, as the turn waited for it: what is left of
            # voice-to-voice once the other stages are out. The first phrase forming
            # depends on the simulated token rate, not on our code.
            clause_wait.append(r.voice_to_voice_ms - sum(stages))  # type: ignore[arg-type]
            without_clause.append(overhead[-1] - clause_wait[-1])
        if r.endpoint_ms is not None:
            endpoint_extra.append(r.endpoint_ms - silence_ms)
        if r.stt_ms is not None and r.endpoint_ms is not None:  # the part of the STT delay not hidden by the silence
            stt_extra.append(r.stt_ms - max(0.0, d.stt_ms - r.endpoint_ms))
        if r.reply_first_token_ms is not None and r.endpoint_ms is not None and r.stt_ms is not None:
            # from the turn's start (the final, after the silence) to the first token,
            # beyond what is left of the model's delay counted from the STT final
            left = max(0.0, d.stt_ms + d.llm_ms - r.endpoint_ms - r.stt_ms)
            llm_extra.append(r.reply_first_token_ms - left)
        if r.tts_first_audio_ms is not None:
            tts_extra.append(r.tts_first_audio_ms - d.tts_ms)
    figures = stage_figures(records)
    injected_totals = [d.total_ms for _, d in injected.values()]
    return {
        **figures,
        "matched_turns": len(overhead),
        "llm_requests": llm_requests,
        "warmup_turns_excluded": WARMUP_TURNS,
        "end_of_utterance_silence_ms": silence_ms,
        "injected_total_p50": pct(injected_totals, 50),
        "profile": {
            "stt_final_ms": "normal(300, 50) after the speech ends",
            "llm_first_token_ms": "normal(400, 100), then a word every 15 ms",
            "tts_first_audio_ms": "uniform(100, 300)",
            "scale": scale,
        },
        **{f"overhead_ms_p{q}": pct(overhead, q) for q in (50, 95)},
        **{f"overhead_endpointing_ms_p{q}": pct(endpoint_extra, q) for q in (50, 95)},
        **{f"overhead_stt_ms_p{q}": pct(stt_extra, q) for q in (50, 95)},
        **{f"overhead_reply_ms_p{q}": pct(llm_extra, q) for q in (50, 95)},
        **{f"overhead_tts_ms_p{q}": pct(tts_extra, q) for q in (50, 95)},
        **{f"first_clause_wait_ms_p{q}": pct(clause_wait, q) for q in (50, 95)},
        **{f"overhead_without_clause_ms_p{q}": pct(without_clause, q) for q in (50, 95)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    r = run(args.turns, args.seed)
    print(f"Voice-to-voice, simulated cloud providers, {r['turns']} turns ({r['matched_turns']} matched)")
    print(f"{'':<24}{'p50':>8}{'p95':>8}")
    for name in ("voice_to_voice_ms", "overhead_ms", "overhead_endpointing_ms", "overhead_stt_ms",
                 "overhead_reply_ms", "overhead_tts_ms", "first_clause_wait_ms", "overhead_without_clause_ms"):
        print(f"{name:<24}{r[name + '_p50'] or 0:>8.0f}{r[name + '_p95'] or 0:>8.0f}")
    emit(r, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
