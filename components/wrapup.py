"""Wrap-up panel: the proposed disposition with its evidence, and the form the agent files."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from components.transcript import fmt_offset
from core.copilot.disposition import Taxonomy
from core.copilot.wrapup import Confirmed, WrapUp
from core.language.text import without_remote_images


@dataclass(frozen=True)
class Filed:
    disposition: str
    sub_disposition: str | None
    summary: str
    notes: str


def _names(taxonomy: Taxonomy) -> dict[str, str]:
    names = {}
    for label in taxonomy.labels:
        names[label.id] = label.name
        names.update({c.id: c.name for c in label.children})
    return names


def render_confirmed(done: Confirmed, taxonomy: Taxonomy) -> None:
    names = _names(taxonomy)
    label = names.get(done.disposition, done.disposition)
    sub = f" / {names.get(done.sub_disposition, done.sub_disposition)}" if done.sub_disposition else ""
    how = "changed from the proposal" if done.overridden else "as proposed"
    st.success(without_remote_images(f"Filed: **{label}{sub}** ({how}) by {done.confirmed_by}."))
    if done.notes:
        st.caption(without_remote_images(done.notes))


_BY = {"llm": "the language model", "embedding": "the embedded model", "lexical": "keyword matching"}


def render_wrapup_form(wrap: WrapUp, taxonomy: Taxonomy, key: str) -> Filed | None:
    """The proposal, its supporting lines and an editable form; the filed values on submit."""
    names = _names(taxonomy)
    sub = f" / {names.get(wrap.sub_disposition, wrap.sub_disposition)}" if wrap.sub_disposition else ""
    st.markdown(
        f"Proposed: **{names.get(wrap.disposition, wrap.disposition)}{sub}** · "
        f"{wrap.confidence:.0%} confidence"
        + (f" (sub-disposition {wrap.sub_confidence:.0%})" if wrap.sub_confidence is not None else "")
        + (f" · by {_BY.get(wrap.method, wrap.method)}" if wrap.method else "")
    )
    if wrap.support:
        st.caption("Why — the lines that support it:")
        for line in wrap.support:
            st.markdown(without_remote_images(f"- `{fmt_offset(line.t_start_ms)}` **{line.speaker}**: {line.text}"))
    top = [label.id for label in taxonomy.labels]
    disposition = st.selectbox(
        "Disposition",
        top,
        index=top.index(wrap.disposition) if wrap.disposition in top else 0,
        format_func=lambda v: names.get(v, v),
        key=f"{key}-disposition",
    )
    children = next((label.children for label in taxonomy.labels if label.id == disposition), ())
    sub_ids = [c.id for c in children]
    sub_disposition = None
    if sub_ids:
        sub_disposition = st.selectbox(
            "Sub-disposition",
            sub_ids,
            index=sub_ids.index(wrap.sub_disposition) if wrap.sub_disposition in sub_ids else 0,
            format_func=lambda v: names.get(v, v),
            key=f"{key}-sub",
        )
    with st.form(f"{key}-form", border=False):
        summary = st.text_area("Summary", wrap.summary, height=120, key=f"{key}-summary")
        notes = st.text_area("Notes", "\n".join(wrap.notes), height=120, key=f"{key}-notes")
        if st.form_submit_button("Confirm disposition", type="primary"):
            return Filed(disposition, sub_disposition, summary, notes)
    return None
