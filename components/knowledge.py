"""Knowledge page widgets: article list, editor, import preview, search hits, model status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import streamlit as st

from components.runtime import kb_markdown
from core.kb import SearchHit
from core.kb.admin import ArticleDraft
from core.kb.importers import ImportPreview
from core.speech.stt.refresh import ModelStatus
from core.store import ArticleRecord

STATUS_ICON = {"ready": ":material/check_circle:", "pending": ":material/hourglass_empty:",
               "rebuilding": ":material/sync:", "failed": ":material/warning:"}
PASSAGE_PREVIEW_CHARS = 400


def render_article_table(records: Sequence[ArticleRecord]) -> None:
    if not records:
        st.info("No articles match. Create one below or import a file.")
        return
    st.dataframe(
        [
            {
                "Title": r.title,
                "Tags": ", ".join(r.tags),
                "Intents": ", ".join(r.intents),
                "Source": r.source,
                "Updated": datetime.fromtimestamp(r.updated_at).strftime("%Y-%m-%d %H:%M"),
            }
            for r in records
        ],
        hide_index=True,
    )


def render_editor(record: ArticleRecord | None, intents: Mapping[str, str], key: str) -> ArticleDraft:
    """Fields for one article (empty for a new one); returns what is typed now."""
    title = st.text_input("Title", value=record.title if record else "", key=f"{key}-title")
    body = st.text_area(
        "Body (Markdown; '## ' headings split it into passages the copilot quotes)",
        value=record.body if record else "",
        height=260,
        key=f"{key}-body",
    )
    c1, c2 = st.columns(2)
    tags = c1.text_input(
        "Tags (comma-separated)", value=", ".join(record.tags) if record else "", key=f"{key}-tags"
    )
    category = c2.text_input("Category", value=record.category if record else "", key=f"{key}-category")
    linked = st.multiselect(
        "Intents this article answers",
        options=list(intents),
        default=[i for i in (record.intents if record else ()) if i in intents],
        format_func=lambda i: f"{intents.get(i, i)} ({i})",
        key=f"{key}-intents",
    )
    with st.expander("Preview"):
        st.markdown(kb_markdown(body) or "_Nothing to preview yet._")
    return ArticleDraft(title, body, (tags,), tuple(linked), category, record.id if record else "")


def render_errors(errors: Sequence[str]) -> None:
    if errors:
        st.error("Not saved:\n" + "\n".join(f"- {e}" for e in errors))


def render_delete_confirmation(title: str) -> bool | None:
    """Asks before deleting: True (delete), False (cancel), None (not answered yet)."""
    st.warning(f"Delete “{title}”? The copilot and the agent stop using it at once.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", type="primary"):
        return True
    if no.button("Cancel"):
        return False
    return None


def render_import_help(max_mb: int) -> None:
    st.markdown(
        "Markdown files (pick every file of a folder, or upload a .zip of them), a CSV with the "
        "columns `title, body` and optionally `id, tags, intents, category`, or a JSON list of "
        f"such objects. UTF-8, at most {max_mb} MB per import. "
        "Nothing is imported until every row is valid."
    )


def render_import_preview(preview: ImportPreview) -> None:
    for error in preview.errors:
        st.error(error)
    if not preview.rows:
        return
    bad = sum(1 for r in preview.rows if r.errors)
    summary = f"{len(preview.rows)} articles found"
    if bad:
        st.warning(f"{summary}; {bad} with problems. Fix the file and upload it again — nothing is imported until every row is valid.")
    else:
        st.success(f"{summary}, all valid.")
    st.dataframe(
        [
            {
                "Where": r.where,
                "Title": r.record.title,
                "Action": r.action,
                "Tags": ", ".join(r.record.tags),
                "Intents": ", ".join(r.record.intents),
                "Problems": "; ".join(r.errors) or "—",
            }
            for r in preview.rows
        ],
        hide_index=True,
    )


def render_hits(hits: Sequence[SearchHit]) -> None:
    if not hits:
        st.caption("Nothing in the knowledge base matches; the copilot would show no article.")
        return
    for rank, hit in enumerate(hits, start=1):
        with st.container(border=True):
            st.markdown(kb_markdown(f"**{rank}. {hit.chunk.title}**" + (f" · _{hit.chunk.heading}_" if hit.chunk.heading else "")))
            st.caption(f"Score {hit.score:.2f} · why: {hit.why}")
            if hit.matched_terms:
                st.caption("Matched: " + ", ".join(dict.fromkeys(hit.matched_terms)))
            text = hit.chunk.text
            st.markdown(kb_markdown(f"> {text[:PASSAGE_PREVIEW_CHARS]}{'…' if len(text) > PASSAGE_PREVIEW_CHARS else ''}"))


def render_speech_status(status: ModelStatus | None) -> None:
    if status is None:
        st.caption("Speech recognition does not use the knowledge base (general model or a cloud provider).")
        return
    st.caption(f"{STATUS_ICON.get(status.state, '')} Speech model: {status.message}")
