"""Transcript rendering."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import streamlit as st

from core.store import CallRecord, SegmentRecord, UtteranceTiming

SPEAKER_LABEL = {"caller": "Caller", "agent": "Agent", "system": "System"}
# Material Symbols in the label's markdown: emoji need a system emoji font
STATUS_ICON = {"active": ":green[:material/radio_button_checked:]", "ended": ":gray[:material/check_circle:]",
               "failed": ":red[:material/error:]"}


def fmt_offset(ms: float) -> str:
    """Call-relative time as m:ss.s"""
    seconds = max(ms, 0.0) / 1000.0
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def fmt_clock(ts: float | None) -> str:
    return "—" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def render_transcript(
    segments: Sequence[SegmentRecord],
    partial: str = "",
    timings: Sequence[UtteranceTiming] = (),
) -> None:
    """Final lines with call-relative times; the partial hypothesis in italics."""
    by_segment = {t.segment_id: t for t in timings if t.segment_id is not None}
    if not segments and not partial:
        st.caption("No speech yet.")
    for seg in segments:
        timing = by_segment.get(seg.id)
        latency = f" · {timing.speech_end_to_final_ms:.0f} ms" if timing else ""
        st.markdown(
            f"<div class='vc-line' data-speaker='{seg.speaker}'>"
            f"<code>{fmt_offset(seg.t_start_ms)}</code> "
            f"<b>{SPEAKER_LABEL.get(seg.speaker, seg.speaker)}</b>: {_escape(seg.text)}"
            f"<span style='opacity:.5;font-size:.8em'>{latency}</span></div>",
            unsafe_allow_html=True,
        )
    if partial:
        st.markdown(
            f"<div class='vc-partial'><i>… {_escape(partial)}</i></div>", unsafe_allow_html=True
        )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_call_list(calls: Sequence[CallRecord], load_segments) -> None:  # type: ignore[no-untyped-def]
    """Recent calls, each expandable to its transcript."""
    if not calls:
        st.info("No calls yet. Press **Start** above and speak to record the first one.")
        return
    for call in calls:
        duration = (
            f"{(call.ended_at - call.started_at):.0f} s" if call.ended_at else "in progress"
        )
        icon = STATUS_ICON.get(call.status, "")
        label = (
            f"{icon} {fmt_clock(call.started_at)} · {call.source} · {duration} · "
            f"{call.segment_count} lines · `{call.id}`"
        )
        with st.expander(label):
            if call.error:
                st.warning(call.error)
            render_transcript(load_segments(call.id))
