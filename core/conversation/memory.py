"""Slot memory: what the caller has told us so far, and what the agent has already said.

:class:`Memory` is immutable; :func:`remember` returns an updated copy per caller turn,
from the slots :mod:`core.copilot.slots` finds in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.copilot.slots import extract_slots


@dataclass(frozen=True)
class Memory:
    """What one conversation has established so far.

    Attributes:
        card_type / card_network / merchant / last_four: latest value the caller gave.
        amounts / dates: every value given, in order (``amount``/``date`` is the latest).
        topic: id of the KB article the conversation is about.
        answered: keys of KB sentences already said to the caller (never repeated).
        mentioned: slot values already used in a reply (``"amount:42.0"``).
        options: article ids offered in a clarifying question still awaiting an answer.
    """

    card_type: str | None = None
    card_network: str | None = None
    amounts: tuple[float, ...] = ()
    dates: tuple[str, ...] = ()
    merchant: str | None = None
    last_four: str | None = None
    topic: str | None = None
    answered: frozenset[str] = field(default_factory=frozenset)
    mentioned: frozenset[str] = field(default_factory=frozenset)
    options: tuple[str, ...] = ()

    @property
    def amount(self) -> float | None:
        return self.amounts[-1] if self.amounts else None

    @property
    def date(self) -> str | None:
        return self.dates[-1] if self.dates else None



def remember(memory: Memory, caller_text: str) -> Memory:
    """``memory`` updated with the slots of one caller turn (later values win)."""
    slots = extract_slots(caller_text)
    if not slots:
        return memory
    return replace(
        memory,
        card_type=slots.card_type or memory.card_type,
        card_network=slots.card_network or memory.card_network,
        amounts=memory.amounts + slots.amounts,
        dates=memory.dates + slots.dates,
        merchant=slots.merchant or memory.merchant,
        last_four=slots.last_four or memory.last_four,
    )


def mark(
    memory: Memory,
    *,
    topic: str | None = None,
    answered: str | None = None,
    mentioned: str | None = None,
    options: tuple[str, ...] | None = None,
) -> Memory:
    """``memory`` with a new topic, pending options, or one more answered sentence or mentioned value."""
    return replace(
        memory,
        topic=topic if topic is not None else memory.topic,
        answered=memory.answered | {answered} if answered else memory.answered,
        mentioned=memory.mentioned | {mentioned} if mentioned else memory.mentioned,
        options=options if options is not None else memory.options,
    )
