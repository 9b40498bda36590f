"""Metrics widgets: plotly charts of :mod:`core.insights.analytics` tables, each with its CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.insights.analytics import Table

TIME_COLUMNS = ("bucket_start", "at", "started_at")
CHART_HEIGHT_PX = 340


def frame(tbl: Table) -> dict[str, list[Any]]:
    """Columns for plotly, Unix times as datetimes."""
    data = tbl.to_dict()
    for col in TIME_COLUMNS:
        if col in data:
            data[col] = [datetime.fromtimestamp(v) for v in data[col]]
    return data


def chart(fig: go.Figure, tbl: Table, name: str, caption: str = "") -> None:
    """A chart, an optional caption and a CSV download of exactly its data."""
    fig.update_layout(height=CHART_HEIGHT_PX, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    st.plotly_chart(fig, width="stretch", key=f"chart_{name}")
    if caption:
        st.caption(caption)
    st.download_button(
        f"Download {name.replace('_', ' ')} (CSV)", tbl.to_csv(), file_name=f"{name}.csv",
        mime="text/csv", key=f"csv_{name}",
    )


def empty(what: str, how: str) -> None:
    st.info(f"No {what} in the selected calls. {how}")


def render_latency(summary: Table, over_time: Table, samples: Table, target_ms: float) -> None:
    if not len(samples):
        empty("measured turns", "Turn latency is recorded on the Talk page (or by demo calls).")
        return
    v2v = next(r for r in summary.records() if r["stage"] == "voice-to-voice")
    cols = st.columns(4)
    cols[0].metric("Voice-to-voice p50", f"{v2v['p50_ms'] or 0:.0f} ms")
    cols[1].metric("Voice-to-voice p95", f"{v2v['p95_ms'] or 0:.0f} ms")
    share = v2v["share_over_target"]
    cols[2].metric(f"Turns over {target_ms:.0f} ms", "—" if share is None else f"{share:.0%}")
    cols[3].metric("Turns measured", v2v["turns"])
    st.dataframe(summary.to_dict(), hide_index=True, width="stretch")
    fig = px.line(frame(over_time), x="bucket_start", y=["p50_ms", "p95_ms"], color="stage", line_dash="variable",
                  markers=True,
                  title="p50 / p95 per stage over time", labels={"value": "ms", "bucket_start": ""})
    fig.add_hline(y=target_ms, line_dash="dash", annotation_text=f"target {target_ms:.0f} ms")
    chart(fig, over_time, "latency_over_time")
    fig = px.box(frame(samples), x="stage", y="ms", points="all", title="Distribution per stage")
    fig.add_hline(y=target_ms, line_dash="dash", annotation_text=f"target {target_ms:.0f} ms")
    chart(fig, samples, "latency_samples")


def render_volumes(per_bucket: Table, concurrent: Table, dead: Table, stats: dict[str, str], dead_air_s: float) -> None:
    cols = st.columns(len(stats))
    for col, (label, value) in zip(cols, stats.items(), strict=True):
        col.metric(label, value)
    chart(px.bar(frame(per_bucket), x="bucket_start", y="calls", title="Calls started",
                 labels={"bucket_start": ""}), per_bucket, "calls_per_period")
    fig = px.line(frame(concurrent), x="at", y="concurrent_calls", line_shape="hv",
                  title="Concurrent calls", labels={"at": ""})
    chart(fig, concurrent, "concurrent_calls")
    if len(dead):
        fig = px.histogram(frame(dead), x="silence_s", title=f"Dead air: silences of {dead_air_s:g} s or more")
        chart(fig, dead, "dead_air")
    else:
        empty(f"silences of {dead_air_s:g} s or more", "Lower the dead-air threshold to see shorter ones.")


def render_outcomes(dispositions: Table, intents: Table, funnel: Table, overrides: Table) -> None:
    left, right = st.columns(2)
    with left:
        chart(px.sunburst(frame(dispositions), path=["disposition", "sub_disposition"], values="calls",
                          title="Dispositions"), dispositions, "dispositions")
    with right:
        chart(px.bar(frame(intents), x="calls", y="intent", orientation="h", title="Call intents"),
              intents, "intents")
    left, right = st.columns(2)
    with left:
        chart(go.Figure(go.Funnel(y=funnel.column("step"), x=funnel.column("count"))).update_layout(
            title="Knowledge base: shown → opened → helpful → reply used"), funnel, "kb_funnel",
            "Opened, helpful and used count clicks on the Live copilot page.")
    with right:
        if len(overrides):
            chart(px.bar(frame(overrides), x="confirmed", y="calls", color="decision",
                         title="Confirmed dispositions: accepted or overridden"), overrides, "overrides")
        else:
            empty("confirmed dispositions", "Dispositions are confirmed on the Live copilot page at call end.")


def render_providers(health: Table, errors: Table, breakers: Table | None, no_breakers: str) -> None:
    if not len(health):
        empty("provider requests", "They are recorded as calls run.")
    else:
        fig = px.bar(frame(health), x="provider", y=["requests", "errors", "fallbacks"], barmode="group",
                     title="Requests, errors and fallbacks per provider")
        chart(fig, health, "provider_health", "Embedded providers: requests derived from the stored turns.")
    if len(errors):
        chart(px.bar(frame(errors), x="provider", y="errors", color="kind", title="Errors by kind"),
              errors, "provider_errors")
    st.markdown("**Circuit breakers**")
    if breakers is None:
        st.caption(no_breakers)
    else:
        st.dataframe(breakers.to_dict(), hide_index=True)


def render_cost(costs: Table, price_label: str) -> None:
    if not len(costs):
        empty("calls", "")
        return
    total = sum(costs.column("cost_usd"))
    cols = st.columns(3)
    cols[0].metric("Total cost", f"${total:,.4f}")
    cols[1].metric("Per call", f"${total / len(costs):,.4f}")
    cols[2].metric("STT minutes", f"{sum(costs.column('stt_seconds')) / 60:,.1f}")
    fig = px.bar(frame(costs), x="started_at", y="cost_usd", hover_data=["call_id", "stt_seconds", "tts_chars"],
                 title=f"Cost per call ({price_label})", labels={"started_at": ""})
    chart(fig, costs, "cost_per_call", "LLM tokens are reported only by cloud language models.")
