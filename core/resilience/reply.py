"""A :class:`~core.conversation.reply.Responder` that fails over along a chain of responders.

Each turn goes to the first provider whose circuit lets it through, retried with
backoff while the turn's budget (time to the first reply token) allows, then to the
next, ending at the offline responder, which always answers.

Streams: a provider that fails *before* its first token is replaced transparently. One
that fails *mid-reply* is not retried (that would repeat words the caller has already
heard); the next provider writes a whole reply and only its sentences that do not
restate what was already said are streamed on, so the turn ends with an answer rather
than half a sentence. The same choice would be wrong for TTS (see :mod:`.tts`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from core.conversation.reply import Conversation, ReplyError, Responder
from core.resilience.chain import ChainFront, provider_name
from core.resilience.observe import ProviderSink
from core.resilience.retry import Budget
from core.resilience.streams import (
    STREAM_ERRORS,
    ChainExhausted,
    StreamFailed,
    close_quietly,
    failover,
    guarded,
)

RESTATED_OVERLAP = 0.6  # share of a sentence's words already said that makes it a repeat
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9']+")


def unsaid_sentences(reply: str, said: str) -> str:
    """The sentences of ``reply`` that do not mostly restate ``said``, joined."""
    said_words = set(_WORD.findall(said.lower()))
    kept = []
    for sentence in _SENTENCE_END.split(reply.strip()):
        words = _WORD.findall(sentence.lower())
        if words and sum(w in said_words for w in words) / len(words) < RESTATED_OVERLAP:
            kept.append(sentence)
    return " ".join(kept)


class FallbackResponder(ChainFront):
    """Responders in order (primary first, offline last) behind one Responder.

    Args:
        chain: the responders with their breakers, retry policy, budget and sink.
    """

    def with_sink(self, sink: ProviderSink) -> FallbackResponder:
        """The same chain reporting one call's events to ``sink``."""
        return FallbackResponder(self.chain.with_sink(sink))


    def greeting(self) -> str:
        for engine in self.chain.engines:
            try:
                return engine.greeting()
            except Exception:  # a greeting is persona text; any provider's will do
                continue
        return ""

    async def stream(self, conversation: Conversation) -> AsyncIterator[str]:
        """The reply from the first provider that can give one (see the module docstring).

        Raises:
            ReplyError: every provider failed (only if the offline floor failed too).
        """
        said: list[str] = []

        def attempt(index: int, budget: Budget, is_last: bool) -> AsyncIterator[str]:
            return self._attempt(self.chain.engines[index], conversation, budget, said, is_last)

        stream = failover(self.chain, attempt)
        try:
            async for delta in stream:
                said.append(delta)
                yield delta
        except ChainExhausted as exc:
            raise ReplyError(f"no responder could reply: {exc.error}", retryable=True) from exc.error
        finally:
            await close_quietly(stream)

    async def _attempt(
        self, engine: Responder, conversation: Conversation, budget: Budget, said: list[str], is_last: bool
    ) -> AsyncIterator[str]:
        """One try on one provider; failures come out as :class:`StreamFailed`."""
        if not said:
            async for delta in guarded(engine.stream(conversation), provider_name(engine), budget, is_last):
                yield delta
            return
        # Continuing a reply another provider broke off: a whole reply, minus repeats.
        try:
            parts = [d async for d in engine.stream(conversation)]
        except STREAM_ERRORS as exc:
            raise StreamFailed(exc, mid_stream=False) from exc
        rest = unsaid_sentences("".join(parts), "".join(said))
        if rest:
            yield " " + rest
