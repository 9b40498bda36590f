"""Demo history: scripted bank conversations run through the real pipeline.

``python -m core.demo [--calls 8] [--days 7]`` (or ``make demo-data``)

Each call plays a scripted caller (the pack's ``eval/conversations.yaml``), spoken by
espeak-ng, into a real voice session with the agent attached, at real-time pace, as a
microphone would. Everything stored is what the pipeline produced: the recognised
lines, the agent's replies, per-turn latency, the knowledge-base articles the copilot
surfaced. When a call ends, the pack's intent classifier labels each caller line
(``intent`` events) and the zero-shot disposition model proposes the wrap-up, which is
confirmed as proposed (``confirmed_by: "demo"``, never overridden).

Calls are recorded now and then moved into the past on a fixed schedule (a few per
day over the last ``days`` days, in office hours, with some overlapping); their source
is ``demo`` so the pages can say so. Nothing is random.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from core.config import load_settings
from core.copilot.disposition import DispositionClassifier, Line, Taxonomy
from core.copilot.live import CallCopilot
from core.copilot.summary import summarise_call
from core.pipeline.mic import LeakyOut, Mic
from core.services import Services, build_services
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ
from core.speech.tts.espeak import speak_16k

log = logging.getLogger(__name__)

DEMO_SOURCE = "demo"
DEFAULT_CALLS = 8
DEFAULT_DAYS = 7
LEAD_IN_SILENCE_S = 0.5
AFTER_CALLER_SILENCE_S = 1.0
CALLER_AUDIO_TIMEOUT_S = 30.0
AGENT_REPLY_TIMEOUT_S = 15.0
POLL_S = 0.05
DAY_S = 86_400.0
OFFICE_START_H = 9
OFFICE_HOURS = 8
# Minutes between calls placed on one day; every third call on a day starts
# OVERLAP_S after the one before instead, so that some calls overlap.
SPACING_MIN = 53
OVERLAP_EVERY = 3
OVERLAP_S = 10


@dataclass(frozen=True)
class DemoCall:
    call_id: str
    scenario: str
    turns: int
    seconds: float


def scenarios(services: Services) -> list[dict[str, Any]]:
    """The pack's scripted conversations."""
    path = services.pack.root / "eval" / "conversations.yaml"
    return list(yaml.safe_load(path.read_text())["conversations"])


def schedule(n: int, days: int, now: float) -> list[float]:
    """Start times for ``n`` calls: spread over the last ``days`` days, office hours.

    Call ``i`` lands on day ``i mod days`` before today, in slot ``i // days``; slots
    follow each other every ``SPACING_MIN`` minutes from ``OFFICE_START_H`` o'clock,
    except every ``OVERLAP_EVERY``-th slot, which starts ``OVERLAP_S`` after the slot
    before it.
    """
    today = now - (now % DAY_S)
    out = []
    for i in range(n):
        day, slot = i % days, i // days
        offset_s = (slot * SPACING_MIN * 60) % (OFFICE_HOURS * 3600)
        if slot % OVERLAP_EVERY == 1:
            offset_s = ((slot - 1) * SPACING_MIN * 60) % (OFFICE_HOURS * 3600) + OVERLAP_S
        out.append(today - (days - day) * DAY_S + OFFICE_START_H * 3600 + offset_s)
    return out


def _wait(cond: Callable[[], bool], timeout_s: float, tick: Callable[[], None] | None = None) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        if tick is not None:
            tick()
        time.sleep(POLL_S)
    return False


def run_conversation(services: Services, scenario: dict[str, Any]) -> DemoCall:
    """One scripted call through the real pipeline; returns when the call has ended."""
    started = time.monotonic()
    out = LeakyOut()
    session = services.new_agent_session(
        out,
        source=DEMO_SOURCE,
        metadata={"demo": True, "scenario": scenario["id"]},
        config=services.agent_config(greet=False, paced_playback=False),
    )
    call_id = session.call_id or ""
    agent = services.agents[call_id]
    copilot = CallCopilot(call_id, services.store, services.kb)
    mic = Mic(session)
    out.mic = mic
    mic.start()
    try:
        mic.say(np.zeros(int(PIPELINE_SAMPLE_RATE_HZ * LEAD_IN_SILENCE_S), np.int16))
        for text in scenario["caller_turns"]:
            before = len(agent.turns)
            pause = np.zeros(int(PIPELINE_SAMPLE_RATE_HZ * AFTER_CALLER_SILENCE_S), np.int16)
            mic.say(np.concatenate([speak_16k(text), pause]))
            _wait(lambda: not mic.busy(), CALLER_AUDIO_TIMEOUT_S, copilot.refresh)
            _wait(lambda b=before: len(agent.turns) > b, AGENT_REPLY_TIMEOUT_S, copilot.refresh)
            copilot.refresh()  # what the support agent would have been shown
    finally:
        mic.stop()
        session.stop()
    return DemoCall(call_id, scenario["id"], len(agent.turns), time.monotonic() - started)


def label_call(services: Services, call_id: str, intents: Any, disposition: DispositionClassifier) -> None:
    """Intent per caller line and a confirmed disposition, from the real models."""
    store = services.store
    segments = store.segments(call_id)
    callers = [s for s in segments if s.speaker == "caller"]
    if intents is not None and callers:
        for seg, pred in zip(callers, intents.predict_batch([s.text for s in callers]), strict=True):
            store.add_event(call_id, "intent", {
                "segment_id": seg.id, "label": pred.label, "confidence": round(float(pred.confidence), 3),
                "out_of_scope": bool(pred.out_of_scope),
            })
    lines = [Line(i, s.speaker, s.text) for i, s in enumerate(segments)]
    if not lines:
        return
    proposal = disposition.propose(lines)
    summary = summarise_call(lines, proposal)
    common = {
        "disposition": proposal.label,
        "sub_disposition": proposal.sub_label,
        "summary": summary.text(),
        "notes": "\n".join(summary.notes.lines()),
    }
    store.add_event(call_id, "disposition_proposed", {**common, "confidence": round(proposal.confidence, 3)})
    store.add_event(call_id, "disposition_confirmed", {**common, "overridden": False, "confirmed_by": "demo"})


def generate(
    services: Services,
    calls: int = DEFAULT_CALLS,
    days: int = DEFAULT_DAYS,
    progress: Callable[[int, int, DemoCall], None] | None = None,
    now: float | None = None,
) -> list[DemoCall]:
    """Run ``calls`` scripted conversations and place them over the last ``days`` days.

    Args:
        services: the product's services (the demo calls go into its store).
        calls: how many calls (the pack's conversations in turn, repeated as needed).
        days: how many past days to spread them over.
        progress: called after each call with (done, total, call).
        now: the reference time for the schedule (default: the clock).
    """
    from core.copilot.intent import IntentClassifier

    convs = scenarios(services)
    starts = schedule(calls, max(1, days), now or time.time())
    intents = IntentClassifier.from_pack(services.pack) if services.pack.intents else None
    disposition = DispositionClassifier(Taxonomy.from_dispositions(services.pack.dispositions))
    done: list[DemoCall] = []
    for i, start in enumerate(starts):
        result = run_conversation(services, convs[i % len(convs)])
        label_call(services, result.call_id, intents, disposition)
        call = services.store.get_call(result.call_id)
        if call is not None:
            services.store.shift_call(result.call_id, start - call.started_at)
        done.append(result)
        if progress is not None:
            progress(i + 1, calls, result)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help="conversations to run")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="past days to spread them over")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    services = build_services(load_settings())
    t0 = time.monotonic()

    def report(n: int, total: int, call: DemoCall) -> None:
        sys.stdout.write(f"[{n}/{total}] {call.scenario}: {call.turns} turns in {call.seconds:.1f} s\n")
        sys.stdout.flush()

    made = generate(services, args.calls, args.days, report)
    sys.stdout.write(
        f"{len(made)} demo calls, {sum(c.turns for c in made)} turns in {time.monotonic() - t0:.0f} s "
        f"→ {services.settings.db_path}\n"
    )
    services.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
