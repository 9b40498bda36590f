"""Live: capture the microphone, transcribe as the caller speaks, keep every line."""

from __future__ import annotations

import streamlit as st

from components.calls import render_recording_notice
from components.providers import render_degraded_banner
from components.rtc import enable_loopback_ice, render_mic_capture
from components.runtime import get_services, store_safe
from components.transcript import fmt_offset, render_call_list, render_transcript
from core.pipeline.bridge import CaptureBridge

services = get_services()
if services.settings.ice_loopback:
    enable_loopback_ice()

st.title("Live transcript")
render_recording_notice(services.settings.record_calls)
st.caption(
    "Press **Start**, allow the microphone and speak. Partial text shows while you talk; "
    "each finished sentence is saved with its time. **Stop** ends the call."
)

if "live_bridge" not in st.session_state:
    st.session_state.live_bridge = CaptureBridge(
        lambda: services.new_session(source="browser", metadata={"page": "live"})
    )
bridge: CaptureBridge = st.session_state.live_bridge

render_mic_capture("live", bridge)


@st.fragment(run_every=services.settings.ui_poll_interval_s)
@store_safe
def live_panel() -> None:
    render_degraded_banner(services.provider_status())
    snap = bridge.snapshot()
    if bridge.error:
        st.error(bridge.error)
    if snap is not None and snap.state in ("listening", "stopping"):
        cols = st.columns(4)
        cols[0].metric("Call", snap.call_id or "—")
        cols[1].metric("Elapsed", fmt_offset(snap.stream_ms))
        cols[2].metric("Input level", f"{snap.level_dbfs:.0f} dBFS")
        cols[3].metric("Speaking", "yes" if snap.in_speech else "no")
        for message in snap.errors[-3:]:
            st.warning(message)
        if snap.unsaved:
            st.warning(f"{snap.unsaved} line(s) not saved yet; retrying.")
        st.subheader("Transcript")
        render_transcript(snap.segments, snap.partial, snap.timings)
        return
    call_id = bridge.last_call_id
    calls = services.store.list_calls(limit=1) if call_id is None else []
    call = services.store.get_call(call_id) if call_id else (calls[0] if calls else None)
    if call is None:
        st.info("Press **Start** to begin a call.")
        return
    st.subheader(f"Last call · `{call.id}` · {call.status}")
    if call.error:
        st.warning(call.error)
    render_transcript(services.store.segments(call.id), "", services.store.timings(call.id))


live_panel()



@st.fragment(run_every=2.0)
@store_safe
def recent_calls() -> None:
    st.subheader("Recent calls")
    render_call_list(services.store.list_calls(limit=20), services.store.segments)


st.divider()
recent_calls()
