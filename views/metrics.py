"""Metrics: latency, volumes, outcomes, provider health and cost over stored calls."""

from __future__ import annotations

import time

import streamlit as st

from components import metrics as ui
from components.calls import demo_button, render_filters
from components.runtime import get_services, store_section
from core.config import DEFAULT_PRICES
from core.insights import analytics as an
from core.insights import costs

services = get_services()
settings = services.settings
store = services.store

st.title("Metrics")
with store_section(stop_page=True):
    everything = an.load(store)
if everything.empty:
    st.info(
        "No calls yet. Have a conversation on the **Talk** page, or create demo history: "
        "scripted bank calls run through the real pipeline (takes about half a minute per call)."
    )
    demo_button(services)
    st.stop()

filters = render_filters(everything, key="metrics", text=False, intents=False)
c1, c2, c3 = st.columns(3)
target_ms = c1.number_input("Latency target (ms)", 50.0, 10_000.0, float(settings.latency_target_ms), 50.0)
dead_air_s = c2.number_input("Dead air from (s)", 0.5, 60.0, float(settings.dead_air_s), 0.5)
prices = {**DEFAULT_PRICES, **settings.prices}
price_as = c3.selectbox("Price calls as", ["providers used", "deepgram + openai + elevenlabs",
                                           "whisper + gemini + elevenlabs"], key="price_as")
with store_section(stop_page=True):
    data = an.load(store, filters)
if data.empty:
    st.info("No calls match these filters. Widen the date range or clear the source and disposition filters.")
    st.stop()
if any(c.source == "demo" for c in data.calls):
    st.caption("Includes demo calls: scripted conversations run through the real pipeline, placed in the past.")

now = time.time()
span = an.bucket_s(min(c.started_at for c in data.calls), max(c.started_at for c in data.calls))
latency, volumes, outcomes, providers = st.tabs(["Latency", "Volumes", "Outcomes", "Providers and cost"])
with latency:
    ui.render_latency(an.latency_summary(data.turns, target_ms), an.latency_over_time(data.turns, span),
                      an.latency_samples(data.turns), target_ms)
with volumes:
    aht = an.average_handle_s(data.summaries)
    interrupted = sum(s.interrupted for s in data.summaries)
    stats = {
        "Calls": str(len(data.calls)),
        "Average handle time": "—" if aht is None else f"{aht:.0f} s",
        "Peak concurrent": str(an.peak_concurrency(data.calls, now)),
        "Interrupted turns": f"{interrupted} of {len(data.turns)}",
    }
    ui.render_volumes(an.calls_per_bucket(data.calls, span), an.concurrency(data.calls, now),
                      an.dead_air(data.segments, dead_air_s), stats, dead_air_s)
with outcomes:
    ui.render_outcomes(an.disposition_mix(data.summaries), an.intent_mix(data.summaries),
                       an.kb_funnel(data.events), an.overrides(data.summaries))
with providers:
    # The cloud resilience layer exposes breaker states in-process; embedded stacks have none.
    breakers = costs.breaker_table(getattr(services, "breaker_states", lambda: None)())
    ui.render_providers(costs.provider_health(data), costs.errors_by_kind(data), breakers, costs.NO_BREAKERS)
    what_if = None if price_as == "providers used" else dict(
        zip(("stt", "llm", "tts"), price_as.split(" + "), strict=True))
    ui.render_cost(costs.cost_per_call(data, prices, what_if), price_as)
