"""Call analysis (intent, disposition, summary) that fails over to the embedded models.

:class:`FallbackAnalyst` tries an LLM analyst (:class:`~core.providers.llm.LLMAnalyst`)
through the same breakers as the replies (``llm:<provider>``: one outage, one circuit),
retrying within the LLM budget, then answers with :class:`EmbeddedAnalyst`: the offline
intent classifier, zero-shot dispositions and the extractive summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from core.copilot.disposition import DispositionProposal, Line
from core.copilot.summary import CallSummary, summarise_call
from core.resilience.breaker import BreakerState
from core.resilience.chain import ChainFront
from core.resilience.observe import ProviderSink, begin_usage
from core.resilience.retry import Budget
from core.resilience.streams import STREAM_ERRORS, ChainExhausted

R = TypeVar("R")


class EmbeddedAnalyst:
    """The offline models behind the analyst methods.

    Args:
        intent: returns the intent model (``predict(text)``; the background-trained
            classifier answers None while it is still training). Called on first use,
            so with a working LLM the offline model is never trained.
        dispositions: the pack's dispositions (the classifier is built on first use).
    """

    name = "embedded"

    def __init__(self, intent: Callable[[], Any], dispositions: Sequence[Any]):
        self._intent = intent
        self._dispositions = dispositions
        self._classifier: Any = None

    def predict(self, text: str) -> Any:
        return self._intent().predict(text)

    def propose(self, lines: Sequence[Line]) -> DispositionProposal:
        if self._classifier is None:
            from core.copilot.disposition import DispositionClassifier, Taxonomy

            self._classifier = DispositionClassifier(Taxonomy.from_dispositions(self._dispositions))
        return self._classifier.propose(lines)  # type: ignore[no-any-return]

    def summarise(self, lines: Sequence[Line], proposal: DispositionProposal | None = None) -> CallSummary:
        return summarise_call(lines, proposal)


class FallbackAnalyst(ChainFront):
    """Analysts in order (LLM first, :class:`EmbeddedAnalyst` last) behind one analyst."""

    def with_sink(self, sink: ProviderSink) -> FallbackAnalyst:
        return FallbackAnalyst(self.chain.with_sink(sink))

    def _call(self, method: Callable[[Any], R]) -> R:
        chain = self.chain
        budget = Budget(chain.budget_s)
        candidates = chain.candidates()
        last_error: BaseException | None = None
        for pos, index in enumerate(candidates):
            if not chain.admit(index):
                continue
            started = time.monotonic()
            attempt = 0
            while True:
                attempt += 1
                usage = begin_usage()
                try:
                    result = method(chain.engines[index])
                except STREAM_ERRORS as exc:
                    last_error = exc
                    chain.attempt_failed(index, exc)
                    delay = chain.policy.delay_before_retry(exc, attempt, budget)
                    if delay is not None and chain.breaker(index).state is BreakerState.CLOSED:
                        time.sleep(delay)
                        continue
                    chain.gave_up(index, exc, started, candidates[pos + 1] if pos + 1 < len(candidates) else None)
                    break
                chain.succeeded(index, started, usage.figures)
                return result
        raise ChainExhausted(last_error)

    def predict(self, text: str) -> Any:
        """The intent of ``text`` (None while the offline classifier is still training)."""
        return self._call(lambda a: a.predict(text))

    def propose(self, lines: Sequence[Line]) -> DispositionProposal:
        return self._call(lambda a: a.propose(lines))

    def summarise(self, lines: Sequence[Line], proposal: DispositionProposal | None = None) -> CallSummary:
        return self._call(lambda a: a.summarise(lines, proposal))
