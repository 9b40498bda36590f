"""WebRTC plumbing shared by pages that capture the microphone."""

from __future__ import annotations

from typing import Any

_PATCHED = False

# No STUN/TURN: the app is reached on the same machine or LAN; an empty list also stops
# streamlit-webrtc from fetching ICE servers from the internet.
RTC_CONFIGURATION: dict[str, Any] = {"iceServers": []}
MIC_CONSTRAINTS: dict[str, Any] = {
    "audio": {"echoCancellation": True, "noiseSuppression": True, "autoGainControl": True},
    "video": False,
}


def enable_loopback_ice() -> None:
    """Make aiortc offer 127.0.0.1 as a host candidate.

    aioice skips loopback when listing host addresses, so a server whose browser runs
    on the same machine (the default ``make run`` set-up, and offline machines with
    only a loopback interface) would offer no candidate the browser can reach.
    """
    global _PATCHED
    if _PATCHED:
        return
    import aioice.ice

    original = aioice.ice.get_host_addresses

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4, use_ipv6))
        if use_ipv4 and "127.0.0.1" not in addresses:
            addresses.append("127.0.0.1")
        return addresses

    aioice.ice.get_host_addresses = with_loopback
    _PATCHED = True


class AudioOutHolder:
    """Forwards agent audio to the current WebRTC session's PCM source.

    streamlit-webrtc creates a new source per WebRTC session; the agent keeps one
    holder and the page points it at the live source on every run.
    """

    def __init__(self) -> None:
        self.source: Any = None

    def push(self, pcm: Any) -> None:
        if self.source is not None:
            self.source.push(pcm)

    def clear(self) -> None:
        if self.source is not None:
            self.source.clear()


def render_mic_capture(
    key: str, bridge: Any, audio_out: AudioOutHolder | None = None, output_rate_hz: int = 48_000
) -> bool | None:
    """The Start/Stop WebRTC widget feeding ``bridge.on_frame``.

    With ``audio_out``, the connection is two-way: what the agent pushes into the holder
    plays in the browser. Returns whether the capture is playing, or None where WebRTC
    cannot run (the script runs without a Streamlit server, as in AppTest).
    """
    import streamlit as st
    from streamlit_webrtc import (
        WebRtcMode,
        create_audio_sink_track,
        create_pcm_audio_source_track,
        webrtc_streamer,
    )

    try:
        sink = create_audio_sink_track(
            callback=bridge.on_frame, key=f"{key}-sink", on_ended=lambda: bridge.close(wait=False)
        )
        source = (
            create_pcm_audio_source_track(key=f"{key}-out", sample_rate=output_rate_hz)
            if audio_out is not None
            else None
        )
    except AttributeError:  # no session manager: not served by `streamlit run`
        st.info("Microphone capture needs the app served by `streamlit run`.")
        return None
    if audio_out is not None:
        audio_out.source = source
    ctx = webrtc_streamer(
        key=key,
        mode=WebRtcMode.SENDONLY if source is None else WebRtcMode.SENDRECV,
        rtc_configuration=RTC_CONFIGURATION,
        media_stream_constraints=MIC_CONSTRAINTS,
        sink_audio_track=sink,
        source_audio_track=source.track if source is not None else None,
        sendback_video=False,
    )
    if not ctx.state.playing and not ctx.state.signalling and bridge.session is not None:
        bridge.close()
    return bool(ctx.state.playing)
