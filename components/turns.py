"""Per-turn latency table for the voice agent."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from core.store import TurnRecord


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def render_turn_metrics(turns: Sequence[TurnRecord]) -> None:
    """One row per turn: endpointing, STT, reply, TTS and voice-to-voice (ms)."""
    if not turns:
        return
    st.subheader("Where the time went (ms)")
    st.dataframe(
        [
            {
                "turn": t.turn_index,
                "caller": t.caller_text,
                "endpointing": _ms(t.endpoint_ms),
                "STT final": _ms(t.stt_ms),
                "reply 1st token": _ms(t.reply_first_token_ms),
                "TTS 1st audio": _ms(t.tts_first_audio_ms),
                "voice-to-voice": _ms(t.voice_to_voice_ms),
                "interrupted": "yes" if t.interrupted else "",
            }
            for t in turns
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        "Reply 1st token counts from the end of the turn; 0 when the reply was already "
        "being written during the caller's pause (a preemptive reply on the recogniser's "
        "settled words)."
    )
