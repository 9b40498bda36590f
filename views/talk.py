"""Talk: a spoken conversation with the agent, answered from the knowledge base."""

from __future__ import annotations

import streamlit as st

from components.calls import render_recording_notice
from components.providers import render_degraded_banner
from components.rtc import AudioOutHolder, enable_loopback_ice, render_mic_capture
from components.runtime import get_services, store_safe
from components.transcript import render_transcript
from components.turns import render_turn_metrics
from core.pipeline.bridge import CaptureBridge

services = get_services()
if services.settings.ice_loopback:
    enable_loopback_ice()

persona = services.pack.persona
st.title(f"Talk to {persona.name}")
render_recording_notice(services.settings.record_calls)
st.caption(
    f"Press **Start** and talk to {persona.name}, the {services.pack.name} voice agent. "
    "Ask about cards, payments, transfers, fees or branches. Talk over the agent to "
    "interrupt it. Each turn shows where the time went."
)

if "talk_bridge" not in st.session_state:
    holder = AudioOutHolder()
    st.session_state.talk_out = holder
    st.session_state.talk_bridge = CaptureBridge(
        lambda: services.new_agent_session(holder, source="talk", metadata={"page": "talk"})
    )
bridge: CaptureBridge = st.session_state.talk_bridge
render_mic_capture("talk", bridge, audio_out=st.session_state.talk_out)


@st.fragment(run_every=services.settings.ui_poll_interval_s)
@store_safe
def conversation() -> None:
    render_degraded_banner(services.provider_status())
    snap = bridge.snapshot()
    call_id = snap.call_id if snap is not None else bridge.last_call_id
    if call_id is None:
        st.info("Press **Start** to begin. The agent greets you first.")
        return
    agent = services.agents.get(call_id)
    if snap is not None and snap.state in ("listening", "stopping"):
        speaking = agent is not None and agent.speaking
        st.markdown(f"**{':material/volume_up: agent speaking' if speaking else ':material/mic: listening'}** · call `{call_id}`")
        for message in snap.errors[-3:]:
            st.warning(message)
        render_transcript(snap.segments, snap.partial)
    else:
        st.markdown(f"Call `{call_id}` ended.")
        render_transcript(services.store.segments(call_id))
    # live: the agent's own list (no store read every poll); afterwards: the store
    render_turn_metrics(agent.turns if agent is not None else services.store.turns(call_id))


conversation()
