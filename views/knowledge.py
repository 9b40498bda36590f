"""Knowledge: the articles the copilot surfaces and the agent answers from — edit, import, try."""

from __future__ import annotations

import streamlit as st

from components.knowledge import (
    render_article_table,
    render_delete_confirmation,
    render_editor,
    render_errors,
    render_hits,
    render_import_help,
    render_import_preview,
    render_speech_status,
)
from components.runtime import get_services, store_safe, store_section
from core.kb.admin import KBValidationError
from core.kb.importers import BYTES_PER_MB, IMPORT_SUFFIXES, MAX_IMPORT_BYTES, commit_import, preview_import
from core.store import StoreError

kb = get_services().knowledge
state = st.session_state
NEW = "new"
state.setdefault("kb_form", 0)  # bumped to give the "new article" fields a clean slate
state.setdefault("kb_upload", 0)  # bumped to clear the uploader after an import
if "kb_next_pick" in state:  # set before the selectbox exists, so it can be changed
    state.kb_pick = state.pop("kb_next_pick")


def done(message: str, pick: str | None = None) -> None:
    state.kb_flash = message
    if pick is not None:
        state.kb_next_pick = pick
    st.rerun()


st.title("Knowledge")
if "kb_flash" in state:
    st.success(state.pop("kb_flash"))


@st.fragment(run_every=2.0)
@store_safe
def speech_status() -> None:
    render_speech_status(kb.speech_status())


speech_status()
articles_tab, import_tab, search_tab = st.tabs(["Articles", "Import", "Search playground"])

with articles_tab, store_section():
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    words = c1.text_input("Filter", placeholder="words in the title, body or tags", key="kb_filter")
    tag = c2.selectbox("Tag", ["", *kb.tags()], format_func=lambda t: t or "any tag", key="kb_tag")
    if c3.button("Re-index search"):
        bar = st.progress(0.0, text="Re-indexing…")
        n = kb.reindex(lambda f: bar.progress(f, text=f"Re-indexing… {f:.0%}"))
        bar.progress(1.0, text=f"Re-indexed {n} articles")
    shown = kb.articles(words, tag)
    st.caption(f"{len(shown)} of {len(kb.articles())} articles")
    render_article_table(shown)
    titles = {r.id: r.title for r in shown}
    pick = st.selectbox("Edit", [NEW, *titles], format_func=lambda i: titles.get(i, "+ New article"), key="kb_pick")
    record = kb.get(pick) if pick != NEW else None
    fields_key = f"kb-{record.id}-{record.updated_at}" if record else f"kb-new-{state.kb_form}"
    draft = render_editor(record, kb.intents, fields_key)
    save_col, delete_col = st.columns(2)
    if save_col.button("Save changes" if record else "Create article", type="primary"):
        try:
            saved = kb.save(draft)
        except KBValidationError as exc:
            render_errors(exc.errors)
        except StoreError as exc:
            render_errors([str(exc)])
        else:
            state.kb_form += 1
            done(f"Saved “{saved.title}”: the copilot uses it from now on.", saved.id)
    if record and delete_col.button("Delete article"):
        state.kb_confirm = record.id
    if record and state.get("kb_confirm") == record.id:
        answer = render_delete_confirmation(record.title)
        if answer:
            kb.delete(record.id)
            done(f"Deleted “{record.title}”.", NEW)
        elif answer is False:
            state.pop("kb_confirm")
            st.rerun()

with import_tab, store_section():
    render_import_help(MAX_IMPORT_BYTES // BYTES_PER_MB)
    files = st.file_uploader(
        "Files to import", type=[s.lstrip(".") for s in IMPORT_SUFFIXES], accept_multiple_files=True,
        key=f"kb_files_{state.kb_upload}",
    )
    if files:
        # one preview per upload, not one per rerun (a big file takes seconds to check);
        # the import itself checks again against the KB as it is then
        upload = tuple((f.file_id, f.name, f.size) for f in files)
        if state.get("kb_preview_for") != upload:
            state.kb_preview = preview_import(kb, [(f.name, f) for f in files])
            state.kb_preview_for = upload
        preview = state.kb_preview
        render_import_preview(preview)
        if st.button(f"Import {len(preview.rows)} articles", disabled=not preview.ok, type="primary"):
            try:
                saved_rows = commit_import(kb, preview)
            except (KBValidationError, StoreError) as exc:
                render_errors(getattr(exc, "errors", None) or [str(exc)])
            else:
                state.kb_upload += 1
                state.pop("kb_preview_for", None)
                done(f"Imported {len(saved_rows)} articles.")

with search_tab:
    st.caption("What the copilot would surface for a caller saying this — the same search, ranked, with why.")
    sentence = st.text_input("Caller says", placeholder="e.g. I was charged twice for my coffee", key="kb_try")
    if sentence:
        render_hits(kb.playground(sentence))
