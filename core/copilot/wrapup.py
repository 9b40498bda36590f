"""After-call work: the proposed disposition, summary and notes, and what the agent confirms.

When a call ends, :func:`propose_wrapup` reads its transcript from the store, assigns a
disposition and sub-disposition from the pack's taxonomy (zero-shot, see
:mod:`core.copilot.disposition`), writes an extractive summary and notes, and records the proposal
as a ``disposition_proposed`` event. The agent confirms or edits it; :func:`confirm_wrapup`
records the final answer as ``disposition_confirmed`` with whether the agent overrode the
proposal. Both events carry plain JSON so the metrics and calls pages can read them from
any store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from core.copilot.disposition import DispositionProposal, Line, Taxonomy
from core.copilot.summary import CallSummary, summarise_call
from core.privacy import pii
from core.store import SegmentRecord, Store

PROPOSED = "disposition_proposed"
CONFIRMED = "disposition_confirmed"


class DispositionModel(Protocol):
    def propose(self, lines: Sequence[Line]) -> DispositionProposal: ...


class Summariser(Protocol):
    def summarise(self, lines: Sequence[Line], proposal: DispositionProposal | None = None) -> CallSummary: ...


@dataclass(frozen=True)
class SupportLine:
    """A transcript line that supports the proposal (segment id, offset, who, words)."""

    segment_id: int
    t_start_ms: float
    speaker: str
    text: str


@dataclass(frozen=True)
class WrapUp:
    """What the wrap-up panel shows and what the store keeps.

    Attributes:
        call_id: the call.
        disposition: proposed top-level label id.
        sub_disposition: proposed sub-label id (None for a flat taxonomy).
        confidence: probability of ``disposition``; ``sub_confidence`` of the sub-label given it.
        support: transcript lines that support the proposal, best first.
        summary: the summary as plain text.
        notes: one note per line (what the caller wanted, what was done, key values).
        ms: time taken to propose, from reading the transcript to the result.
        method: who proposed the disposition (``llm``, ``embedding``, ``lexical``).
    """

    call_id: str
    disposition: str
    sub_disposition: str | None
    confidence: float
    sub_confidence: float | None
    support: tuple[SupportLine, ...]
    summary: str
    notes: tuple[str, ...]
    ms: float = 0.0
    method: str = ""

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["support"] = [asdict(s) for s in self.support]
        data["notes"] = list(self.notes)
        return data


@dataclass(frozen=True)
class Confirmed:
    """The disposition the agent filed."""

    disposition: str
    sub_disposition: str | None
    summary: str
    notes: str
    overridden: bool
    confirmed_by: str
    ts: float


def _lines(segments: Sequence[SegmentRecord]) -> list[Line]:
    return [Line(i, s.speaker, s.text) for i, s in enumerate(segments) if s.speaker in ("caller", "agent")]


def propose_wrapup(
    store: Store, call_id: str, model: DispositionModel, summariser: Summariser | None = None
) -> WrapUp:
    """Propose disposition, summary and notes for ``call_id`` and record the proposal.

    ``summariser`` picks the summary's key lines (an LLM analyst); by default they are
    extracted from the transcript (:func:`core.copilot.summary.summarise_call`).

    Raises:
        KeyError: the call is not in the store.
    """
    start = time.perf_counter()
    if store.get_call(call_id) is None:
        raise KeyError(call_id)
    segments = [s for s in store.segments(call_id) if s.speaker in ("caller", "agent")]
    lines = _lines(segments)
    proposal = model.propose(lines)
    summary = summarise_call(lines, proposal) if summariser is None else summariser.summarise(lines, proposal)
    by_index = {line.index: segments[line.index] for line in lines}
    support = tuple(
        SupportLine(by_index[i].id, by_index[i].t_start_ms, by_index[i].speaker, text)
        for i, text, _ in proposal.supporting_lines
        if i in by_index
    )
    caller = " / ".join(t for _, t in summary.caller)
    agent = " / ".join(t for _, t in summary.agent)
    notes = [
        *([f"Customer wanted: {caller}"] if caller else []),
        *([f"Done: {agent}"] if agent else []),
        *summary.notes.lines(),
    ]
    wrap = WrapUp(
        call_id=call_id,
        disposition=proposal.label,
        sub_disposition=proposal.sub_label,
        confidence=round(proposal.confidence, 4),
        sub_confidence=None if proposal.sub_confidence is None else round(proposal.sub_confidence, 4),
        support=support,
        summary=summary.text(),
        notes=tuple(notes),
        ms=round((time.perf_counter() - start) * 1000, 1),
        method=proposal.method,
    )
    store.add_event(call_id, PROPOSED, wrap.payload())
    return wrap


def stored_proposal(store: Store, call_id: str) -> WrapUp | None:
    """The latest proposal recorded for ``call_id`` (None if none was made)."""
    events = store.events(call_id, PROPOSED)
    if not events:
        return None
    p = dict(events[-1].payload)
    p["support"] = tuple(SupportLine(**s) for s in p.get("support", ()))
    p["notes"] = tuple(p.get("notes", ()))
    return WrapUp(**p)


def confirm_wrapup(
    store: Store,
    proposal: WrapUp,
    disposition: str,
    sub_disposition: str | None,
    summary: str,
    notes: str,
    confirmed_by: str,
    taxonomy: Taxonomy | None = None,
    redact: Callable[[str], str] | None = None,
) -> Confirmed:
    """Record the disposition the agent filed, and whether it differs from the proposal.

    The summary and notes the agent typed are redacted like transcripts before they are
    stored (``redact``; by default :func:`core.privacy.pii.redact`): an agent may paste a card
    number or an email into the notes.

    Raises:
        ValueError: the labels are not in ``taxonomy`` (when given), or the sub-label
            does not belong to the disposition.
    """
    if taxonomy is not None:
        subs = {label.id: {c.id for c in label.children} for label in taxonomy.labels}
        if disposition not in subs:
            raise ValueError(f"unknown disposition {disposition!r}; choose one of {sorted(subs)}")
        if subs[disposition] and sub_disposition not in subs[disposition]:
            raise ValueError(
                f"{sub_disposition!r} is not a sub-disposition of {disposition!r}; "
                f"choose one of {sorted(subs[disposition])}"
            )
    overridden = (disposition, sub_disposition) != (proposal.disposition, proposal.sub_disposition)
    clean = redact or (lambda text: pii.redact(text)[0])
    confirmed = Confirmed(disposition, sub_disposition, clean(summary), clean(notes), overridden, confirmed_by,
                          time.time())
    store.add_event(
        proposal.call_id,
        CONFIRMED,
        {
            **asdict(confirmed),
            "proposed_disposition": proposal.disposition,
            "proposed_sub_disposition": proposal.sub_disposition,
        },
    )
    return confirmed


def confirmed_disposition(store: Store, call_id: str) -> Confirmed | None:
    """The latest disposition the agent filed for ``call_id`` (None if not yet)."""
    events = store.events(call_id, CONFIRMED)
    if not events:
        return None
    p = events[-1].payload
    return Confirmed(
        p["disposition"],
        p.get("sub_disposition"),
        p.get("summary", ""),
        p.get("notes", ""),
        bool(p.get("overridden")),
        p.get("confirmed_by", ""),
        float(p.get("ts", events[-1].ts)),
    )


__all__ = [
    "CONFIRMED",
    "PROPOSED",
    "Confirmed",
    "SupportLine",
    "WrapUp",
    "confirm_wrapup",
    "confirmed_disposition",
    "propose_wrapup",
    "stored_proposal",
]
