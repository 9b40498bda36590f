"""Provider chains per stage: who serves, the fallbacks, circuit breakers, health checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from core.resilience import ChainStatus

STAGE_TITLES = {"stt": "Speech to text", "llm": "Replies", "tts": "Text to speech"}
STATE_NAMES = {"closed": "closed", "half_open": "half-open", "open": "open"}  # a table cell: plain text


def render_provider_chains(
    chains: Sequence[ChainStatus],
    offline: Mapping[str, str],
    keys: Mapping[str, str],
    checks: Mapping[str, str],
) -> str | None:
    """One block per stage; returns the provider whose **Check** button was pressed.

    Args:
        chains: stages served by a fallback chain.
        offline: stage → provider for stages served offline only.
        keys: provider → its key, already masked.
        checks: provider → the last check's result text.
    """
    pressed = None
    for status in chains:
        title = STAGE_TITLES.get(status.stage, status.stage)
        with st.container(border=True):
            label = f"**{title}** — serving: `{status.active}`"
            if status.degraded:
                st.warning(f"{label} · degraded mode: falling back from `{status.providers[0]}`")
            else:
                st.markdown(label)
            st.caption("Fallback chain: " + " → ".join(status.providers))
            rows = []
            for name, breaker in zip(status.providers, status.breakers, strict=True):
                rows.append({
                    "provider": name,
                    "circuit": STATE_NAMES.get(breaker.state.value, breaker.state.value),
                    "ok": breaker.successes,
                    "failed": breaker.failures,
                    "skipped": breaker.rejected,
                    "opened": breaker.opened_count,
                    "reopens in (s)": round(breaker.open_remaining_s, 1) if breaker.open_remaining_s else None,
                    "key": keys.get(name, "—"),
                    "last error": breaker.last_error or "",
                })
            st.dataframe(rows, hide_index=True, width="stretch")
            cloud = [n for n in status.providers[:-1]]
            cols = st.columns(max(1, len(cloud)))
            for col, name in zip(cols, cloud, strict=False):
                if col.button(f"Check {name}", key=f"check-{status.stage}-{name}"):
                    pressed = name
                if name in checks:
                    col.caption(checks[name])
    for stage, provider in offline.items():
        st.markdown(f"**{STAGE_TITLES.get(stage, stage)}** — `{provider}` (offline, nothing to fall back to)")
    return pressed


def render_degraded_banner(chains: Sequence[ChainStatus]) -> None:
    """One line on a call page when a stage has fallen back from its chosen provider."""
    degraded = [s for s in chains if s.degraded]
    if degraded:
        parts = [
            f"{STAGE_TITLES.get(s.stage, s.stage).lower()} on `{s.active}` (instead of `{s.providers[0]}`)"
            for s in degraded
        ]
        st.warning("Degraded mode: " + "; ".join(parts) + ". Calls go on; see **Health**.", icon=":material/warning:")
