"""Extractive call summary and wrap-up notes: the caller's and agent's key lines, and values.

Nothing is generated: the summary quotes the call. A line is worth quoting when it is
about what the call is about and carries information:

* **topicality**: cosine between the line's stems and the whole call's stem counts
  (words the call keeps coming back to), plus, when a disposition was proposed, a bonus
  for the lines that supported it;
* **information**: a line that states a value (an amount, a date, a card) gets a bonus;
  greetings, thanks and goodbyes are never quoted, nor lines of one or two words.

Notes collect the values the call mentioned (amounts, dates, card type and network, the
last four digits, the merchant) with the slot extractors of :mod:`core.copilot.slots`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from core.copilot.disposition import DispositionProposal, Line, content_lines
from core.copilot.slots import (
    dialogue_act,
    extract_amounts,
    extract_card,
    extract_dates,
    extract_last_four,
    extract_merchant,
    spoken_amount,
)
from core.kb.lexical import analyze

MIN_CONTENT_WORDS = 2  # shorter lines ("savings", "my debit card") are answers, not points
VALUE_BONUS = 0.3  # a line that states an amount, date or card
SUPPORT_BONUS = 0.5  # a line that supported the proposed disposition
CALLER_POINTS = 2
AGENT_POINTS = 2
QUESTION_FACTOR = 0.5  # a question asks for information rather than stating it
_SMALL_TALK = frozenset({"greeting", "goodbye", "thanks"})
_QUESTION_START = frozenset(
    ["how", "what", "when", "where", "why", "which", "who", "can", "could", "will", "would"]
    + ["do", "does", "did", "is", "are", "should", "shall", "may"]
)


def is_question(text: str) -> bool:
    """True for a line that asks ("what day would you like", "how can i help you today")."""
    words = [w for w in text.lower().split() if w not in ("uh", "um", "so", "and", "okay", "alright", "oh")]
    return bool(words) and words[0] in _QUESTION_START


@dataclass(frozen=True)
class CallNotes:
    """Values mentioned in the call (latest card details win; amounts and dates in order)."""

    amounts: tuple[float, ...] = ()
    dates: tuple[str, ...] = ()
    card_type: str | None = None
    card_network: str | None = None
    last_four: str | None = None
    merchant: str | None = None

    def lines(self) -> list[str]:
        """Human-readable notes, one per kind of value."""
        out = []
        if self.amounts:
            out.append("Amounts: " + ", ".join(f"${spoken_amount(a)}" for a in self.amounts))
        if self.dates:
            out.append("Dates: " + ", ".join(self.dates))
        card = " ".join(x for x in (self.card_network, self.card_type) if x)
        if card or self.last_four:
            out.append(f"Card: {card or 'card'}" + (f" ending {self.last_four}" if self.last_four else ""))
        if self.merchant:
            out.append(f"Merchant: {self.merchant}")
        return out


@dataclass(frozen=True)
class CallSummary:
    """Key lines of each side, in call order, and the notes.

    Attributes:
        caller: ``(segment index, text)`` of the caller's key lines.
        agent: ``(segment index, text)`` of the agent's key lines.
        notes: values mentioned in the call.
        disposition: ``"label / sub_label"`` when a proposal was given.
    """

    caller: list[tuple[int, str]]
    agent: list[tuple[int, str]]
    notes: CallNotes
    disposition: str | None = None

    def text(self) -> str:
        """The summary as plain text for a wrap-up panel or a CRM note."""
        parts = []
        if self.disposition:
            parts.append(f"Disposition: {self.disposition}")
        if self.caller:
            parts.append("Caller: " + " / ".join(t for _, t in self.caller))
        if self.agent:
            parts.append("Agent: " + " / ".join(t for _, t in self.agent))
        parts.extend(self.notes.lines())
        return "\n".join(parts)


def extract_notes(lines: Sequence[Line]) -> CallNotes:
    """Every amount and date, and the latest card details, stated by either side (not asked)."""
    amounts: list[float] = []
    dates: list[str] = []
    card_type = network = last_four = merchant = None
    for line in lines:
        if is_question(line.text):  # "how can i help you today" states no date
            continue
        amounts.extend(a for a in extract_amounts(line.text) if a not in amounts)
        dates.extend(d for d in extract_dates(line.text) if d not in dates)
        t, n = extract_card(line.text)
        card_type, network = t or card_type, n or network
        last_four = extract_last_four(line.text) or last_four
        merchant = extract_merchant(line.text) or merchant
    return CallNotes(tuple(amounts), tuple(dates), card_type, network, last_four, merchant)


def _has_value(text: str) -> bool:
    return bool(extract_amounts(text) or extract_dates(text) or any(extract_card(text)))


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def summarise_call(
    lines: Sequence[Line],
    proposal: DispositionProposal | None = None,
    caller_points: int = CALLER_POINTS,
    agent_points: int = AGENT_POINTS,
) -> CallSummary:
    """Quote the key caller and agent lines and collect the notes.

    Args:
        lines: the call's segments in order.
        proposal: the disposition proposed for the call (its supporting lines are favoured).
        caller_points: caller lines to quote at most.
        agent_points: agent lines to quote at most.
    """
    kept = content_lines(lines)
    bags = {line.index: Counter(analyze(line.text)) for line in kept}
    call: Counter[str] = Counter()
    for bag in bags.values():
        call.update(set(bag))  # in how many lines a word occurs, not how often it is repeated
    supported = {i for i, _, _ in proposal.supporting_lines} if proposal else set()
    scored: list[tuple[float, Line]] = []
    for line in kept:
        bag = bags[line.index]
        if sum(bag.values()) < MIN_CONTENT_WORDS or dialogue_act(line.text) in _SMALL_TALK:
            continue
        others = call - Counter(set(bag))  # the rest of the call, so a line is not its own topic
        score = _cosine(bag, others)
        if is_question(line.text):
            score *= QUESTION_FACTOR
        else:
            score += VALUE_BONUS * _has_value(line.text)
        score += SUPPORT_BONUS * (line.index in supported)
        scored.append((score, line))

    def pick(agent: bool, n: int) -> list[tuple[int, str]]:
        side = [(s, ln) for s, ln in scored if (ln.speaker == "agent") == agent and s > 0]
        best = sorted(side, key=lambda x: (-x[0], x[1].index))[:n]
        return [(ln.index, ln.text) for _, ln in sorted(best, key=lambda x: x[1].index)]

    label = None
    if proposal is not None:
        label = proposal.label + (f" / {proposal.sub_label}" if proposal.sub_label else "")
    return CallSummary(pick(False, caller_points), pick(True, agent_points), extract_notes(kept), label)


__all__ = ["CallNotes", "CallSummary", "extract_notes", "is_question", "summarise_call"]
