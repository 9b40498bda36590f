"""Reply interface: what the voice agent asks of whatever writes its answers.

A :class:`Responder` reads a :class:`Conversation` and streams the agent's next reply
as text deltas. The embedded, KB-grounded responder in :mod:`core.conversation.embedded` is the
offline default; LLM adapters implement the same two methods and translate their SDK
errors into :class:`ReplyError`.

Streaming contract: ``stream`` is an async generator. The consumer cancels a reply by
no longer iterating (``aclose``) or by cancelling its task, so an implementation must
not compute ahead of consumption, and must only record in the conversation's memory
what it has actually yielded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from core.conversation.memory import Memory, remember

Speaker = Literal["caller", "agent"]


@dataclass(frozen=True)
class Turn:
    """One utterance: the caller's recognised words or the agent's spoken reply."""

    speaker: Speaker
    text: str


@dataclass
class Conversation:
    """The turns of one call so far and the slot memory built from them.

    Mutable on purpose: the voice agent appends turns as they happen and the responder
    records what it said in ``memory`` (itself immutable, replaced on each update).
    """

    turns: list[Turn] = field(default_factory=list)
    memory: Memory = field(default_factory=Memory)

    def add(self, speaker: Speaker, text: str) -> Turn:
        """Append a turn; a caller turn also updates the slot memory."""
        turn = Turn(speaker, text)
        self.turns.append(turn)
        if speaker == "caller":
            self.memory = remember(self.memory, text)
        return turn

    def caller_texts(self) -> list[str]:
        """Every caller turn, oldest first."""
        return [t.text for t in self.turns if t.speaker == "caller"]

    @property
    def last_caller_text(self) -> str:
        """The latest caller turn, ``""`` if the caller has not spoken yet."""
        return next((t.text for t in reversed(self.turns) if t.speaker == "caller"), "")

    @property
    def last_agent_text(self) -> str:
        """The latest agent turn, ``""`` if the agent has not spoken yet."""
        return next((t.text for t in reversed(self.turns) if t.speaker == "agent"), "")


class Responder(Protocol):
    """Writes the agent's replies."""

    def greeting(self) -> str:
        """What the agent says when the call connects."""
        ...

    def stream(self, conversation: Conversation) -> AsyncIterator[str]:
        """The reply to the latest caller turn, as text deltas that join into the reply.

        Raises:
            ReplyError: the reply could not be produced (check ``retryable``).
        """
        ...


class ReplyError(RuntimeError):
    """A responder failed to produce a reply.

    Attributes:
        retryable: ``True`` for transient causes (timeout, rate limit, connection) where
            trying again or failing over to another responder can help.
    """

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


__all__ = ["Conversation", "Memory", "ReplyError", "Responder", "Speaker", "Turn"]
