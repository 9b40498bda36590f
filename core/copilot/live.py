"""Live copilot: what a support agent sees about a call, derived from the stored transcript.

Works from the store alone, so it follows any call — captured in this process, by
another browser, or by another process writing to the same database. One
:class:`CallCopilot` per followed call keeps the state that must not flicker: the
surfaced articles change only when the topic really changes (a new article must beat
the shown ones by a margin, or the caller must say something new).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.kb import KBSearch, SearchHit
from core.store import CallRecord, SegmentRecord, Store

KB_TOP_K = 3
HISTORY_TURNS = 3
# A different top article replaces the shown one only when its score is this much higher.
TOPIC_SWITCH_MARGIN = 1.15
SUGGESTIONS = 3


class IntentModel(Protocol):
    def predict(self, text: str) -> Any: ...


class SentimentModel(Protocol):
    def score(self, text: str) -> Any: ...


@dataclass(frozen=True)
class IntentView:
    label: str
    confidence: float
    out_of_scope: bool = False


@dataclass(frozen=True)
class SentimentPoint:
    segment_id: int
    t_ms: float
    compound: float
    label: str


@dataclass(frozen=True)
class Surfaced:
    article_id: str
    title: str
    passage: str
    why: str
    score: float


@dataclass(frozen=True)
class CopilotView:
    call: CallRecord
    segments: tuple[SegmentRecord, ...]
    intent: IntentView | None
    sentiment: tuple[SentimentPoint, ...]
    articles: tuple[Surfaced, ...]
    suggestions: tuple[str, ...]


@dataclass
class _State:
    seen_segment_id: int = 0
    articles: tuple[Surfaced, ...] = ()
    intent: IntentView | None = None
    sentiment: list[SentimentPoint] = field(default_factory=list)
    suggestions: tuple[str, ...] = ()
    logged_articles: set[str] = field(default_factory=set)
    logged_suggestions: set[str] = field(default_factory=set)


def _hit_to_surfaced(hit: SearchHit) -> Surfaced:
    chunk = hit.chunk
    return Surfaced(
        article_id=chunk.article_id,
        title=chunk.title,
        passage=chunk.text,
        why=hit.why or ", ".join(hit.matched_terms),
        score=float(hit.score),
    )


def suggest_replies(articles: Sequence[Surfaced], limit: int = SUGGESTIONS) -> tuple[str, ...]:
    """Replies grounded in the surfaced passages: their first customer-facing sentences."""
    from core.kb.chunking import spoken_form
    from core.language.text import split_sentences

    out: list[str] = []
    for art in articles:
        for sentence in split_sentences(art.passage):
            spoken = spoken_form(sentence)
            if spoken and len(spoken.split()) >= 5 and spoken not in out:
                out.append(spoken)
                break
        if len(out) >= limit:
            break
    return tuple(out)


class CallCopilot:
    """Incremental copilot state for one call."""

    def __init__(
        self,
        call_id: str,
        store: Store,
        kb: KBSearch,
        intent: IntentModel | None = None,
        sentiment: SentimentModel | None = None,
    ):
        self.call_id = call_id
        self._store = store
        self._kb = kb
        self._intent = intent
        self._sentiment = sentiment
        self._state = _State()
        self._lock = threading.Lock()

    def refresh(self) -> CopilotView | None:
        """Read what is new in the store and update the view (cheap when nothing changed)."""
        call = self._store.get_call(self.call_id)
        if call is None:
            return None
        segments = tuple(self._store.segments(self.call_id))
        with self._lock:
            new = [s for s in segments if s.id > self._state.seen_segment_id]
            if new:
                self._state.seen_segment_id = max(s.id for s in segments)
                self._update(segments, [s for s in new if s.speaker == "caller"])
            elif self._state.intent is None:
                self._update_intent(segments)  # the model may have finished loading since
            st = self._state
            return CopilotView(
                call=call,
                segments=segments,
                intent=st.intent,
                sentiment=tuple(st.sentiment),
                articles=st.articles,
                suggestions=st.suggestions,
            )

    def _update(self, segments: Sequence[SegmentRecord], new_caller: Sequence[SegmentRecord]) -> None:
        if not new_caller:
            return
        st = self._state
        callers = [s.text for s in segments if s.speaker == "caller"]
        latest = new_caller[-1].text
        if self._sentiment is not None:
            for seg in new_caller:
                result = self._sentiment.score(seg.text)
                st.sentiment.append(
                    SentimentPoint(seg.id, seg.t_start_ms, float(result.compound), str(result.label))
                )
        self._update_intent(segments)
        hits = self._kb.search(latest, k=KB_TOP_K, history=callers[-HISTORY_TURNS - 1 : -1])
        fresh = tuple(_hit_to_surfaced(h) for h in hits)
        if self._should_switch(st.articles, fresh):
            st.articles = fresh
            st.suggestions = suggest_replies(fresh)
            shown = [a.article_id for a in fresh if a.article_id not in st.logged_articles]
            if shown:
                st.logged_articles.update(shown)
                self._store.add_event(self.call_id, "kb_shown", {"articles": shown})
            offered = [t for t in st.suggestions if t not in st.logged_suggestions]
            if offered:
                st.logged_suggestions.update(offered)
                self._store.add_event(self.call_id, "suggestions_shown", {"replies": offered})

    def _update_intent(self, segments: Sequence[SegmentRecord]) -> None:
        """The caller's intent from their last two turns (unchanged while the model loads)."""
        callers = [s.text for s in segments if s.speaker == "caller"]
        if self._intent is None or not callers:
            return
        pred = self._intent.predict(" ".join(callers[-2:]))
        if pred is not None:  # None: the model is still loading
            self._state.intent = IntentView(
                str(pred.label), float(pred.confidence), bool(getattr(pred, "out_of_scope", False))
            )

    @staticmethod
    def _should_switch(current: Sequence[Surfaced], fresh: Sequence[Surfaced]) -> bool:
        """Hysteresis: keep the shown articles unless the new query really favours others.

        Scores from different queries are not comparable, so the shown top article is
        judged by its score under the *new* query: a different article must beat it by
        ``TOPIC_SWITCH_MARGIN``, or it must have dropped out of the results.
        """
        if not fresh:
            return False
        if not current:
            return True
        if fresh[0].article_id == current[0].article_id:
            return {a.article_id for a in fresh} != {a.article_id for a in current}
        now = {a.article_id: a.score for a in fresh}
        shown_top = current[0].article_id
        return shown_top not in now or fresh[0].score >= TOPIC_SWITCH_MARGIN * now[shown_top]


def active_calls(store: Store, stale_after_s: float) -> list[CallRecord]:
    """Active calls, newest first, after marking calls of dead processes failed."""
    store.reap_stale_calls(stale_after_s)  # cheap (read first); calls of dead processes: core.pipeline.reaper.Reaper
    return store.list_calls(limit=50, status="active")


def record_action(store: Store, call_id: str, action: str, payload: dict[str, Any]) -> None:
    """Every suggestion clicked or used is recorded (kb_opened, kb_helpful, reply_copied...)."""
    store.add_event(call_id, action, payload)
