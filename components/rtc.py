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


# A media end this soon before the user's Stop reaches the server is that Stop.
STOP_GRACE_S = 2.0
# A consent check (RFC 7675) whose answer arrives within this long still counts.
CONSENT_ANSWER_WINDOW_RETRANSMISSIONS = 3  # answers accepted for 0.5+1+2+4 = 7.5 s
_CONSENT_PATCHED = False


def tolerate_late_consent_answers() -> None:
    """Keep a call whose consent answers are late, not missing.

    aioice sends each consent check once and gives it 0.5 s (``retransmissions=0``);
    six misses in a row (about 30 s) close the connection. aiortc reads the peer's
    datagrams on Streamlit's event loop one per loop turn, so with several two-way
    calls the socket queue holds seconds of RTP and every answer is "late": each Talk
    call was cut at 31-41 s (status ``ended``, no error) with four concurrent calls.
    Retransmitting the check (same transaction id) lets a late answer count; a browser
    that is really gone still fails the checks and ends the call.
    """
    global _CONSENT_PATCHED
    if _CONSENT_PATCHED:
        return
    import asyncio
    import logging
    import random

    import aioice.ice
    from aioice import stun

    log = logging.getLogger(__name__)
    needed = ("query_consent", "build_request", "close")
    if not all(hasattr(aioice.ice.Connection, n) for n in needed) or not hasattr(aioice.ice, "CONSENT_FAILURES"):
        log.warning("aioice changed: ICE consent checks keep their library behaviour")
        _CONSENT_PATCHED = True
        return

    async def query_consent(self: aioice.ice.Connection) -> None:
        assert self.remote_password is not None
        failures = 0
        while True:
            await asyncio.sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
            for pair in self._nominated.values():
                request = self.build_request(pair, nominate=False)
                try:
                    await pair.protocol.request(
                        request, pair.remote_addr,
                        integrity_key=self.remote_password.encode("utf8"),
                        retransmissions=CONSENT_ANSWER_WINDOW_RETRANSMISSIONS,
                    )
                    failures = 0
                except stun.TransactionError:
                    failures += 1
                    log.warning("ICE consent check unanswered (%d in a row)", failures)
                if failures >= aioice.ice.CONSENT_FAILURES:
                    log.warning("ICE consent expired: closing the connection")
                    self.consent_expired = True  # read by end_reason()
                    self._query_consent_task = None
                    return await self.close()

    aioice.ice.Connection.query_consent = query_consent
    _CONSENT_PATCHED = True


_OBSERVER_PATCHED = False


def release_closed_tabs() -> None:
    """Let a closed tab's session, and the threads watching it, go.

    streamlit-webrtc watches each browser session on a thread that should end once the
    session is garbage (it holds only a weak reference), but the loop keeps the session it
    dereferenced in a local variable while it sleeps, so the session never becomes garbage
    and the thread never ends: the soak left 9 such threads for 7 closed tabs, with their
    sessions' state. The loop below is streamlit-webrtc's with that reference dropped
    before each sleep.
    """
    global _OBSERVER_PATCHED
    if _OBSERVER_PATCHED:
        return
    import logging

    try:
        from streamlit_webrtc import shutdown
        from streamlit_webrtc._compat import AppSessionState
    except ImportError:
        return
    observer = getattr(shutdown, "SessionShutdownObserver", None)
    page_hash = getattr(shutdown, "_get_current_page_script_hash", None)
    if observer is None or page_hash is None or not hasattr(observer, "_polling_thread_impl"):
        _OBSERVER_PATCHED = True
        return
    log = logging.getLogger(__name__)

    def polling(self: Any, app_session_ref: Any, initial_page_script_hash: str) -> None:
        while True:
            app_session = app_session_ref()
            if not app_session:
                break  # the session is gone: release what it used
            if app_session._state == AppSessionState.SHUTDOWN_REQUESTED:
                break
            current = page_hash(app_session) if initial_page_script_hash else ""
            if current and current != initial_page_script_hash:
                break  # navigated to another page
            del app_session  # only the weak reference while waiting
            if self._polling_thread_stop_event.wait(1.0):
                return
        self._polling_thread_stop_event.set()
        try:
            self._callback()
        except Exception:
            log.exception("a WebRTC shutdown callback failed")

    observer._polling_thread_impl = polling
    _OBSERVER_PATCHED = True


def end_reason(ctx: Any) -> str:
    """Why the media of ``ctx`` (a WebRtcStreamerContext) ended without the user's Stop."""
    worker = ctx._get_worker() if ctx is not None and hasattr(ctx, "_get_worker") else None
    pc = getattr(worker, "pc", None)
    if pc is None:
        return "the connection was reset on the server before Stop (page rerun or signalling timeout)"
    ice, conn = pc.iceConnectionState, pc.connectionState
    consent = any(
        getattr(getattr(t, "_connection", None), "consent_expired", False)
        for t in getattr(pc, "_RTCPeerConnection__iceTransports", ())
    )
    if consent:
        return f"the browser stopped answering ICE consent checks for 30 s (ICE {ice}): connection lost"
    if ice in ("failed", "disconnected", "closed"):
        return f"the WebRTC connection was lost (ICE {ice}, connection {conn})"
    return (
        f"the server stopped the media while the connection was up (ICE {ice}): "
        "the browser tab was closed, the page was left, or the session was reset"
    )


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

    tolerate_late_consent_answers()
    release_closed_tabs()
    holder: dict[str, Any] = {}  # the context, once webrtc_streamer has made it

    def media_ended() -> None:  # aiortc's loop: every end that is not the user's Stop
        bridge.fail(end_reason(holder.get("ctx")), grace_s=STOP_GRACE_S)

    def state_changed() -> None:  # script thread, before the worker is torn down
        state = st.session_state[key].state
        if not state.playing and not state.signalling:
            bridge.close()  # Stop pressed (or the browser itself gave up): "ended"

    try:
        sink = create_audio_sink_track(callback=bridge.on_frame, key=f"{key}-sink", on_ended=media_ended)
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
        on_change=state_changed,
    )
    holder["ctx"] = ctx
    if not ctx.state.playing and not ctx.state.signalling and bridge.session is not None:
        # stopped without a Stop event reaching this session (context reset on a rerun)
        bridge.fail("the capture stopped without Stop (the widget was reset)")
    return bool(ctx.state.playing)
