"""Call filters, the call list, one call's detail, demo history and the recording notice."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import streamlit as st

from core.insights import analytics as an
from core.insights.export import CallDetail, transcript_table, turns_table
from core.language.text import without_remote_images

DEFAULT_DAYS = 7
DEMO_BUTTON_CALLS = 4
RECORDING_NOTICE = (
    "This call is recorded. Callers must be told and agree before the call goes on; "
    "recordings are kept in the data folder (VC_RECORD_CALLS=false turns this off)."
)


def render_recording_notice(record_calls: bool) -> None:
    """The consent notice shown wherever a call can start while recording is on."""
    if record_calls:
        st.warning(RECORDING_NOTICE, icon=":material/fiber_manual_record:")


def _options(values: list[str]) -> list[str]:
    return sorted(set(values))


def render_filters(everything: an.CallData, key: str, text: bool = True, intents: bool = True) -> an.Filters:
    """Date range, source, disposition (and transcript text, intent); returns the filters."""
    newest = max((c.started_at for c in everything.calls), default=datetime.now().timestamp())
    last = datetime.fromtimestamp(newest).date()
    cols = st.columns(4 if intents else 3)
    picked = cols[0].date_input("Dates", (last - timedelta(days=DEFAULT_DAYS), last), key=f"{key}_dates")
    sources = cols[1].multiselect("Source", _options([c.source for c in everything.calls]), key=f"{key}_sources")
    dispositions = cols[2].multiselect(
        "Disposition", _options([s.disposition for s in everything.summaries]), key=f"{key}_dispositions"
    )
    chosen_intents: list[str] = []
    if intents:
        chosen_intents = cols[3].multiselect(
            "Intent", _options([s.intent for s in everything.summaries]), key=f"{key}_intents"
        )
    query = st.text_input("Search transcripts", key=f"{key}_text", placeholder="e.g. charged twice") if text else ""
    start, end = _range(picked)
    return an.Filters(
        since=datetime.combine(start, time.min).timestamp() if start else None,
        until=datetime.combine(end + timedelta(days=1), time.min).timestamp() if end else None,
        sources=tuple(sources), dispositions=tuple(dispositions), intents=tuple(chosen_intents), text=query,
    )


def _range(picked: Any) -> tuple[date | None, date | None]:
    """A date_input value (one date while the user is still picking, or two) as a range."""
    if isinstance(picked, (tuple, list)):
        if len(picked) == 2:
            return picked[0], picked[1]
        return (picked[0], picked[0]) if picked else (None, None)
    return picked, picked


def demo_button(services: Any, calls: int = DEMO_BUTTON_CALLS) -> None:
    """Create demo history from the page (runs scripted calls through the real pipeline)."""
    if st.button(f"Create {calls} demo calls", type="primary", key="demo_create"):
        from core.insights.demo import generate

        with st.status("Running scripted calls through the pipeline…", expanded=True) as status:
            generate(services, calls=calls, progress=lambda n, total, c: st.write(
                f"{n}/{total}: {c.scenario.replace('_', ' ')} — {c.turns} turns in {c.seconds:.0f} s"))
            status.update(label="Demo calls ready", state="complete")
        st.rerun()


def fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def render_detail(detail: CallDetail) -> None:
    s = detail.summary
    call = s.call
    st.subheader(f"Call {call.id}")
    if call.source == "demo":
        st.caption("Demo call: a scripted conversation run through the real pipeline, placed in the past.")
    cols = st.columns(4)
    cols[0].metric("Started", fmt_time(call.started_at))
    cols[1].metric("Handle time", "—" if s.handle_s is None else f"{s.handle_s:.0f} s")
    cols[2].metric("Intent", s.intent.replace("_", " "))
    cols[3].metric("Disposition", s.disposition.replace("_", " "))
    if s.disposition != an.NOT_SET:
        who = f"confirmed by {s.confirmed_by}" if s.confirmed else "proposed, not confirmed yet"
        change = f" (agent changed it from {s.proposed})" if s.overridden else ""
        st.markdown(without_remote_images(f"**{s.disposition} / {s.sub_disposition or '—'}** — {who}{change}"))
        if s.notes:
            st.text(s.notes)
    if detail.recording is not None:
        st.audio(str(detail.recording))
    st.markdown("**Transcript**")
    st.dataframe(transcript_table(detail).to_dict(), hide_index=True, width="stretch")
    st.markdown("**Per-turn latency (ms)**")
    if detail.turns:
        st.dataframe(turns_table(detail).to_dict(), hide_index=True, width="stretch")
    else:
        st.caption("No agent turns in this call (a listen-only call, or the agent did not answer).")
    st.markdown("**Knowledge base shown**")
    st.write(", ".join(detail.kb_shown) if detail.kb_shown else "Nothing was shown.")
