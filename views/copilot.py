"""Live copilot: follows active calls by itself and helps the support agent."""

from __future__ import annotations

import streamlit as st

from components.copilot import render_articles, render_intent, render_sentiment, render_suggestions
from components.runtime import get_services, store_safe
from components.transcript import fmt_clock, render_transcript
from components.wrapup import render_confirmed, render_wrapup_form
from core.copilot.live import CallCopilot, active_calls, record_action
from core.copilot.wrapup import confirm_wrapup, confirmed_disposition
from core.pipeline.session import STALE_CALL_AFTER_S
from core.privacy.pii import Redactor

services = get_services()
store = services.store
AUTO = "Newest active call"

st.title("Live copilot")
st.caption(
    "Follows the newest active call automatically — from the Talk or Live page in any "
    "browser, or any other source writing to the store. Pick another active call below."
)

if "copilots" not in st.session_state:
    st.session_state.copilots = {}


def copilot_for(call_id: str) -> CallCopilot:
    cache: dict[str, CallCopilot] = st.session_state.copilots
    if call_id not in cache:
        cache[call_id] = services.new_copilot(call_id)
    return cache[call_id]


@st.fragment(run_every=1.0)
@store_safe
def panel() -> None:
    calls = active_calls(store, STALE_CALL_AFTER_S)
    labels = {c.id: f"{c.id} · {c.source} · started {fmt_clock(c.started_at)}" for c in calls}
    choice = st.selectbox(
        "Call", [AUTO, *labels], format_func=lambda v: labels.get(v, v), key="copilot_choice"
    )
    if calls:
        call_id = calls[0].id if choice == AUTO or choice not in labels else choice
        st.session_state.copilot_last = call_id
    else:
        call_id = st.session_state.get("copilot_last")
        recent = store.list_calls(limit=1)
        if call_id is None and recent:
            call_id = recent[0].id
        if call_id is None:
            st.info("No active call. Start one on the **Talk** or **Live** page; it appears here by itself.")
            return
        st.caption("No active call right now — showing the most recent one.")
    view = copilot_for(call_id).refresh()
    if view is None:
        st.warning(f"Call {call_id} is no longer in the store.")
        return
    if view.call.status != "active" and st.session_state.get("wrapup_call") != call_id:
        st.session_state.wrapup_call = call_id  # the wrap-up form lives outside this fragment
        st.rerun()
    status = {"active": ":green-badge[live]", "ended": ":gray-badge[ended]", "failed": ":red-badge[failed]"}[view.call.status]
    st.markdown(f"**Call `{call_id}`** · {view.call.source} · {status}")
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Transcript")
        render_transcript(view.segments)
    with right:
        c1, c2 = st.columns(2)
        with c1:
            render_intent(view.intent)
        with c2:
            render_sentiment(view.sentiment)
        st.subheader("Knowledge base")
        render_articles(
            view.articles,
            on_open=lambda a: record_action(store, call_id, "kb_opened", {"article": a}),
            on_helpful=lambda a: record_action(store, call_id, "kb_helpful", {"article": a}),
            key=call_id,
        )
        render_suggestions(
            view.suggestions,
            on_use=lambda t: record_action(store, call_id, "reply_used", {"text": t}),
            key=call_id,
        )


panel()


def wrap_up(call_id: str) -> None:
    """Proposed disposition, summary and notes for the call that ended; the agent files them."""
    st.subheader("Wrap-up")
    st.caption(f"Call `{call_id}`")
    done = confirmed_disposition(store, call_id)
    if done is not None:
        render_confirmed(done, services.taxonomy)
        return
    with st.spinner("Proposing a disposition…"):
        wrap = services.wrap_up(call_id)
    agent = st.text_input("Your name (filed with the disposition)", key="agent_name") or "agent"
    filed = render_wrapup_form(wrap, services.taxonomy, key=f"wrap-{call_id}")
    if filed is not None:
        confirm_wrapup(
            store,
            wrap,
            filed.disposition,
            filed.sub_disposition,
            filed.summary,
            filed.notes,
            agent,
            services.taxonomy,
            redact=Redactor(services.settings.pii_redaction),
        )
        st.rerun()


if st.session_state.get("wrapup_call"):
    wrap_up(st.session_state.wrapup_call)

with st.expander("Search the knowledge base"):
    query = st.text_input("Search", placeholder="e.g. international transfer fee")
    if query:
        for hit in services.kb.search(query, k=5):
            st.markdown(f"**{hit.chunk.title}** — {hit.why}")
            st.caption(hit.chunk.text[:300])
