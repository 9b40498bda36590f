"""Copilot widgets: intent, sentiment trend, surfaced articles, suggested replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from components.runtime import kb_markdown
from core.copilot.live import IntentView, SentimentPoint, Surfaced

# Material Symbols (Streamlit's own font), not emoji: those need a system emoji font.
SENTIMENT_ICON = {
    "negative": ":material/sentiment_dissatisfied:",
    "neutral": ":material/sentiment_neutral:",
    "positive": ":material/sentiment_satisfied:",
}
TREND_ICON = {"improving": ":material/trending_up:", "worsening": ":material/trending_down:",
              "steady": ":material/trending_flat:"}


# Intent and sentiment are a caption, the value in bold and its detail: text that wraps in
# a narrow column. (st.metric cuts a long value off with an ellipsis: "duplica…".)
def render_intent(intent: IntentView | None) -> None:
    st.caption("Intent")
    if intent is None:
        st.markdown("—")
        return
    label = "out of scope" if intent.out_of_scope else intent.label.replace("_", " ")
    st.markdown(f"**{label}**")
    st.caption(f"{intent.confidence:.0%} confidence")


def render_sentiment(points: Sequence[SentimentPoint]) -> None:
    st.caption("Sentiment")
    if not points:
        st.markdown("—")
        return
    last = points[-1]
    st.markdown(f"{SENTIMENT_ICON.get(last.label, '')} **{last.label}**".strip())
    if len(points) >= 2:  # a trend needs two turns
        diff = points[-1].compound - sum(p.compound for p in points[:-1]) / (len(points) - 1)
        trend = "improving" if diff > 0.15 else "worsening" if diff < -0.15 else "steady"
        st.caption(f"{TREND_ICON[trend]} {trend}")
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
