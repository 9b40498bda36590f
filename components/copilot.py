"""Copilot widgets: intent, sentiment trend, surfaced articles, suggested replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from components.runtime import kb_markdown
from core.copilot.live import IntentView, SentimentPoint, Surfaced

SENTIMENT_ICON = {"negative": "🙁", "neutral": "😐", "positive": "🙂"}


def render_intent(intent: IntentView | None) -> None:
    if intent is None:
        st.metric("Intent", "—")
        return
    label = "out of scope" if intent.out_of_scope else intent.label.replace("_", " ")
    st.metric("Intent", label, f"{intent.confidence:.0%} confidence", delta_color="off")


def render_sentiment(points: Sequence[SentimentPoint]) -> None:
    if not points:
        st.metric("Sentiment", "—")
        return
    last = points[-1]
    trend = ""
    if len(points) >= 2:
        diff = points[-1].compound - sum(p.compound for p in points[:-1]) / (len(points) - 1)
        trend = "improving" if diff > 0.15 else "worsening" if diff < -0.15 else "steady"
    st.metric("Sentiment", f"{SENTIMENT_ICON.get(last.label, '')} {last.label}", trend, delta_color="off")
    if len(points) >= 2:  # a trend needs two turns
        st.line_chart(
            {"caller sentiment (−1 to 1)": [round(p.compound, 2) for p in points]},
            height=120,
            y_label="",
        )


def render_articles(
    articles: Sequence[Surfaced],
    on_open: Callable[[str], None],
    on_helpful: Callable[[str], None],
    key: str,
) -> None:
    if not articles:
        st.caption("Articles appear here as the caller explains what they need.")
        return
    for i, art in enumerate(articles):
        with st.container(border=True):
            st.markdown(kb_markdown(f"**{art.title}**"))
            st.caption(f"Why: {art.why}")
            st.markdown(kb_markdown(f"> {art.passage[:400]}{'…' if len(art.passage) > 400 else ''}"))
            c1, c2 = st.columns(2)
            if c1.button("Open", key=f"{key}-open-{i}-{art.article_id}"):
                on_open(art.article_id)
            if c2.button("Helpful", key=f"{key}-helpful-{i}-{art.article_id}"):
                on_helpful(art.article_id)


def render_suggestions(suggestions: Sequence[str], on_use: Callable[[str], None], key: str) -> None:
    if not suggestions:
        return
    st.markdown("**Suggested replies**")
    for i, text in enumerate(suggestions):
        st.code(text, language=None, wrap_lines=True)  # the copy icon copies it in one click
        if st.button("Used this", key=f"{key}-use-{i}"):
            on_use(text)
