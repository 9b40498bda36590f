"""A :class:`~core.speech.tts.TTSEngine` that fails over along a chain of synthesisers.

Each piece of a reply (a sentence or clause) goes to the first engine whose circuit
lets it through; the first audio must come within the budget, retryable failures are
retried while it allows, then the next engine speaks the piece.

Mid-stream failure: audio already played cannot be matched to words, so the next
engine speaks the *whole piece* again. Pieces are one clause (about a second or two),
and a restarted clause is understood where a cut one is not; that is the trade taken.

Engines may run at different sample rates: the chain speaks at the primary's rate and
resamples the others' audio to it, so the consumer never sees the rate change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from core.ops.aio import close_quietly
from core.resilience.chain import Chain, ChainFront, provider_name
from core.resilience.observe import ProviderSink
from core.resilience.retry import Budget
from core.resilience.streams import ChainExhausted, failover, guarded
from core.speech.audio import Int16Array, StreamResampler, int16_to_float
from core.speech.tts import TTSEngine, TTSError


class FallbackTTS(ChainFront):
    """Synthesisers in order (primary first, offline last) behind one TTSEngine.

    Args:
        chain: the engines with their breakers, retry policy, budget and sink.
    """

    def __init__(self, chain: Chain[TTSEngine]):
        super().__init__(chain)
        self.sample_rate_hz = int(chain.engines[0].sample_rate_hz)

    def with_sink(self, sink: ProviderSink) -> FallbackTTS:
        """The same chain reporting one call's events to ``sink``."""
        return FallbackTTS(self.chain.with_sink(sink))


    def prepare(self, text: str) -> None:
        """Have the engine that would speak now synthesise ``text`` ahead of time, if it
        can (an embedded voice with a phrase cache; a cloud voice cannot)."""
        candidates = self.chain.candidates()
        prepare = getattr(self.chain.engines[candidates[0]], "prepare", None) if candidates else None
        if prepare is not None:
            prepare(text)

    async def _speak(
        self, engine: TTSEngine, text: str, previous_text: str, budget: Budget, is_last: bool
    ) -> AsyncIterator[Int16Array]:
        resampler = StreamResampler(self.sample_rate_hz)
        rate = int(engine.sample_rate_hz)
        async for chunk in guarded(engine.stream(text, previous_text), provider_name(engine), budget, is_last):
            yield chunk if rate == self.sample_rate_hz else resampler.process(int16_to_float(chunk), rate)
        if rate != self.sample_rate_hz:
            yield resampler.flush()

    async def stream(self, text: str, previous_text: str = "") -> AsyncIterator[Int16Array]:
        """Audio for ``text`` from the first engine that can speak it.

        Raises:
            TTSError: every engine failed.
        """

        def attempt(index: int, budget: Budget, is_last: bool) -> AsyncIterator[Int16Array]:
            return self._speak(self.chain.engines[index], text, previous_text, budget, is_last)

        stream = failover(self.chain, attempt, {"tts_chars": float(len(text))})
        try:
            async for chunk in stream:
                if chunk.size:
                    yield chunk
        except ChainExhausted as exc:
            raise TTSError(f"no speech engine could speak: {exc.error}") from exc.error
        finally:
            await close_quietly(stream)
