"""Vendor-neutral LLM services: a KB-grounded :class:`~core.conversation.reply.Responder` and call analysis.

A vendor adapter implements :class:`LLMBackend` — stream text for a system prompt and
messages, and answer one request as JSON that follows a schema — and translates its SDK
errors into :class:`~core.resilience.errors.ProviderError`. Everything else (retrieval,
prompts, parsing into the product's result types) is here, once for every vendor.

The analysis results are the embedded models' own types, behind small Protocols that
the copilot and wrap-up code can use whichever produced them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from core.conversation.reply import Conversation
from core.copilot.disposition import DispositionProposal, Line
from core.copilot.intent import IntentPrediction
from core.copilot.summary import CallSummary
from core.kb import KBSearch
from core.kb.pack import Pack
from core.providers import prompting


class LLMBackend(Protocol):
    """What a vendor adapter provides."""

    name: str

    def stream_text(self, system: str, messages: list[prompting.Message]) -> AsyncIterator[str]:
        """Text deltas of the model's answer.

        Raises:
            ProviderError: the request failed (at any point of the stream).
        """
        ...

    def complete_json(self, system: str, user: str, schema_name: str, schema: dict[str, Any]) -> Any:
        """The model's answer to one request, parsed from JSON that follows ``schema``.

        Raises:
            ProviderError: the request failed or the answer was not JSON.
        """
        ...

    def probe(self, timeout_s: float) -> str:
        """A cheap authenticated request (list models); returns a short description.

        Raises:
            ProviderError: the provider cannot be reached or refuses the key.
        """
        ...


class IntentDetector(Protocol):
    def predict(self, text: str) -> IntentPrediction: ...


class DispositionProposer(Protocol):
    def propose(self, lines: Sequence[Line]) -> DispositionProposal: ...


class CallSummariser(Protocol):
    def summarise(self, lines: Sequence[Line], proposal: DispositionProposal | None = None) -> CallSummary: ...


class LLMResponder:
    """Replies from an LLM, grounded in the passages the KB search finds for the turn.

    Args:
        backend: the vendor adapter.
        pack: persona and KB owner.
        kb: the search the embedded responder uses too.
    """

    def __init__(self, backend: LLMBackend, pack: Pack, kb: KBSearch):
        self.backend = backend
        self.name = backend.name
        self._pack = pack
        self._kb = kb

    def greeting(self) -> str:
        return self._pack.persona.greeting

    async def stream(self, conversation: Conversation) -> AsyncIterator[str]:
        """Reply deltas; only the passages retrieved for this turn are offered to the model.

        Raises:
            ProviderError: the vendor failed (the fallback chain decides what next).
        """
        hits = prompting.retrieve(self._kb, conversation)
        system = prompting.reply_system_prompt(self._pack, hits)
        async for delta in self.backend.stream_text(system, prompting.reply_messages(conversation)):
            if delta:
                yield delta


class LLMAnalyst:
    """Intent, disposition and summary from one LLM, as the embedded models' result types."""

    def __init__(self, backend: LLMBackend, pack: Pack):
        self.backend = backend
        self.name = backend.name
        self._pack = pack
        self._intents = prompting.intent_labels(pack)
        self._tops, self._subs = prompting.disposition_labels(pack)

    def predict(self, text: str) -> IntentPrediction:
        """The caller's intent among the pack's intents (or out of scope)."""
        data = self.backend.complete_json(
            prompting.intent_prompt(self._pack), f"Caller: {text}", "intent", prompting.intent_schema(self._intents)
        )
        return prompting.parse_intent(self.name, data, self._intents)

    def propose(self, lines: Sequence[Line]) -> DispositionProposal:
        """The call's disposition among the pack's dispositions, with supporting lines."""
        data = self.backend.complete_json(
            prompting.disposition_prompt(self._pack), prompting.transcript_text(lines), "disposition",
            prompting.disposition_schema(self._tops, self._subs),
        )
        return prompting.parse_disposition(self.name, data, lines, self._pack)

    def summarise(self, lines: Sequence[Line], proposal: DispositionProposal | None = None) -> CallSummary:
        """Key caller and agent lines (quoted, not rewritten) and the call's notes."""
        data = self.backend.complete_json(
            prompting.SUMMARY_PROMPT, prompting.transcript_text(lines), "summary", prompting.SUMMARY_SCHEMA
        )
        return prompting.parse_summary(self.name, data, lines, proposal)
