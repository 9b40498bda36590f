"""What the LLM adapters ask and how their JSON answers become product results.

Shared by every LLM vendor: the grounded reply prompt (persona from the pack, answer
only from retrieved KB passages, one or two spoken sentences), and the JSON schemas and
parsers for intent, disposition and summary, whose results are the same dataclasses
the embedded models return (:class:`~core.copilot.intent.IntentPrediction`,
:class:`~core.copilot.disposition.DispositionProposal`, :class:`~core.copilot.summary.CallSummary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.conversation.reply import Conversation
from core.copilot.disposition import DispositionProposal, Line
from core.copilot.intent import OUT_OF_SCOPE, IntentPrediction
from core.copilot.summary import CallSummary, extract_notes
from core.kb import SearchHit
from core.kb.pack import Pack
from core.providers.transport import malformed

HISTORY_TURNS = 10  # conversation turns sent with a reply request
PASSAGE_CHARS = 1200  # each retrieved passage is cut here
MAX_REPLY_TOKENS = 120  # two spoken sentences fit well within this
TOP_ALTERNATIVES = 3
Message = dict[str, str]  # {"role": "user" | "assistant", "content": ...}


def reply_system_prompt(pack: Pack, hits: Sequence[SearchHit]) -> str:
    """Persona, rules and the passages the reply must come from."""
    persona = pack.persona
    passages = "\n\n".join(
        f"[{i}] {h.chunk.title}{' — ' + h.chunk.heading if h.chunk.heading else ''}\n{h.chunk.text[:PASSAGE_CHARS]}"
        for i, h in enumerate(hits, 1)
    ) or "(no passage matched)"
    return (
        f"You are {persona.name}, a phone support agent for {pack.name}. Tone: {persona.tone}.\n"
        "You are speaking on a phone call: answer in one or two short spoken sentences, "
        "no lists, no markdown, no URLs, numbers as a person would say them.\n"
        "Answer ONLY from the knowledge-base passages below. If they do not answer the "
        f"caller's question, say exactly: \"{persona.handoff}\". If the question is unclear, "
        "ask one short clarifying question.\n\n"
        f"Passages:\n{passages}"
    )


def reply_messages(conversation: Conversation) -> list[Message]:
    """The latest turns as chat messages (caller = user, agent = assistant)."""
    turns = conversation.turns[-HISTORY_TURNS:]
    return [{"role": "user" if t.speaker == "caller" else "assistant", "content": t.text} for t in turns]


def retrieve(kb: Any, conversation: Conversation, k: int = 3) -> list[SearchHit]:
    """KB passages for the latest caller turn, earlier caller turns as history."""
    callers = conversation.caller_texts()
    if not callers:
        return []
    return list(kb.search(callers[-1], k=k, history=callers[:-1]))


# --- structured outputs -----------------------------------------------------------------
def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def intent_labels(pack: Pack) -> list[str]:
    return [str(i["id"]) for i in pack.intents]


def disposition_labels(pack: Pack) -> tuple[list[str], list[str]]:
    """Top-level disposition ids and sub-disposition ids (``""`` allowed for none)."""
    tops = [str(d["id"]) for d in pack.dispositions]
    subs = [str(s["id"]) for d in pack.dispositions for s in d.get("sub_dispositions") or ()]
    return tops, subs + [""]


def intent_schema(labels: Sequence[str]) -> dict[str, Any]:
    scored = _obj({"label": {"type": "string", "enum": [*labels, OUT_OF_SCOPE]}, "confidence": {"type": "number"}})
    return _obj({"ranked": {"type": "array", "items": scored}})


def disposition_schema(tops: Sequence[str], subs: Sequence[str]) -> dict[str, Any]:
    return _obj({
        "label": {"type": "string", "enum": list(tops)},
        "sub_label": {"type": "string", "enum": list(subs)},
        "confidence": {"type": "number"},
        "supporting_lines": {"type": "array", "items": {"type": "integer"}},
    })


SUMMARY_SCHEMA = _obj({
    "caller_lines": {"type": "array", "items": {"type": "integer"}},
    "agent_lines": {"type": "array", "items": {"type": "integer"}},
})


def intent_prompt(pack: Pack) -> str:
    described = "\n".join(f"- {i['id']}: {i.get('description') or i.get('name', '')}" for i in pack.intents)
    return (
        "Classify what the caller wants. Rank up to three intents from the list, best "
        f"first, each with a probability 0-1; use {OUT_OF_SCOPE} if none fits.\nIntents:\n{described}"
    )


def disposition_prompt(pack: Pack) -> str:
    lines = []
    for d in pack.dispositions:
        lines.append(f"- {d['id']}: {d.get('description', '')}")
        lines += [f"  - {s['id']}: {s.get('description', '')}" for s in d.get("sub_dispositions") or ()]
    return (
        "Choose the call's disposition (and its sub-disposition, or \"\" if none fits), "
        "a probability 0-1, and the numbers of the transcript lines that support it.\n"
        "Dispositions:\n" + "\n".join(lines)
    )


SUMMARY_PROMPT = (
    "Pick the key lines of this call: at most two caller lines (what they needed, facts "
    "they gave) and two agent lines (what was done or promised), by line number."
)


def transcript_text(lines: Sequence[Line]) -> str:
    return "\n".join(f"{line.index}. {line.speaker}: {line.text}" for line in lines)


def parse_intent(provider: str, data: Any, labels: Sequence[str]) -> IntentPrediction:
    """An :class:`IntentPrediction` from the model's ranked labels (unknown labels dropped)."""
    try:
        ranked = [(str(r["label"]), float(r["confidence"])) for r in data["ranked"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise malformed(provider, f"intent answer without ranked labels: {exc}") from exc
    known = set(labels)
    in_scope = [(lab, max(0.0, min(1.0, c))) for lab, c in ranked if lab in known][:TOP_ALTERNATIVES]
    best = ranked[0][0] if ranked else OUT_OF_SCOPE
    confidence = in_scope[0][1] if in_scope else 0.0
    out = best == OUT_OF_SCOPE or not in_scope
    return IntentPrediction(OUT_OF_SCOPE if out else in_scope[0][0], confidence, tuple(in_scope), out)


def parse_disposition(provider: str, data: Any, lines: Sequence[Line], pack: Pack) -> DispositionProposal:
    """A :class:`DispositionProposal` with the supporting lines quoted from the transcript."""
    tops, subs = disposition_labels(pack)
    try:
        label, sub = str(data["label"]), str(data.get("sub_label") or "") or None
        confidence = max(0.0, min(1.0, float(data["confidence"])))
        support = [int(i) for i in data.get("supporting_lines") or ()]
    except (KeyError, TypeError, ValueError) as exc:
        raise malformed(provider, f"disposition answer incomplete: {exc}") from exc
    if label not in tops:
        raise malformed(provider, f"unknown disposition {label!r}")
    by_index = {line.index: line.text for line in lines}
    quoted = [(i, by_index[i], confidence) for i in support if i in by_index]
    return DispositionProposal(
        label, confidence, sub if sub in subs else None, confidence if sub in subs else None,
        quoted, {label: confidence}, method="llm",
    )


def parse_summary(
    provider: str, data: Any, lines: Sequence[Line], proposal: DispositionProposal | None
) -> CallSummary:
    """A :class:`CallSummary` quoting the lines the model picked (never its own words)."""
    try:
        caller_ids = [int(i) for i in data["caller_lines"]]
        agent_ids = [int(i) for i in data["agent_lines"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise malformed(provider, f"summary answer incomplete: {exc}") from exc
    by_index = {line.index: line for line in lines}

    def pick(ids: list[int], agent: bool) -> list[tuple[int, str]]:
        chosen = [by_index[i] for i in sorted(set(ids)) if i in by_index]
        return [(ln.index, ln.text) for ln in chosen if (ln.speaker == "agent") == agent]

    disposition = None
    if proposal is not None:
        disposition = proposal.label + (f" / {proposal.sub_label}" if proposal.sub_label else "")
    return CallSummary(pick(caller_ids, False), pick(agent_ids, True), extract_notes(lines), disposition)
