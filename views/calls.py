"""Calls: search and filter stored calls, read one in full, export."""

from __future__ import annotations

import streamlit as st

from components.calls import demo_button, fmt_time, render_detail, render_filters
from components.runtime import get_services, store_section
from core.insights import analytics as an
from core.insights.export import call_detail, call_json, call_list, list_json, transcript_table

services = get_services()
store = services.store

st.title("Calls")
with store_section(stop_page=True):
    everything = an.load(store)
if everything.empty:
    st.info("No calls yet. Have a conversation on the **Talk** page, or create demo history.")
    demo_button(services)
    st.stop()

filters = render_filters(everything, key="calls")
with store_section(stop_page=True):
    data = an.load(store, filters)
if data.empty:
    st.info("No calls match. Widen the date range, clear the filters or search for fewer words.")
    st.stop()

listing = call_list(data)
st.caption(f"{len(listing)} calls")
st.dataframe(listing.to_dict(), hide_index=True, width="stretch")
c1, c2 = st.columns(2)
c1.download_button("Download list (CSV)", listing.to_csv(), "calls.csv", "text/csv", key="list_csv")
c2.download_button("Download list (JSON)", list_json(data), "calls.json", "application/json", key="list_json")

labels = {s.call.id: f"{fmt_time(s.call.started_at)} · {s.call.source} · {s.intent} · {s.disposition}"
          for s in data.summaries}
call_id = st.selectbox("Open call", list(labels), format_func=labels.get, key="call_pick")
detail = call_detail(store, call_id, services.settings.recordings_dir) if call_id else None
if detail is None:
    st.warning("That call is no longer in the store.")
    st.stop()
render_detail(detail)
c1, c2 = st.columns(2)
c1.download_button("Download call (JSON)", call_json(detail), f"call-{call_id}.json", "application/json",
                   key="call_json")
c2.download_button("Download transcript (CSV)", transcript_table(detail).to_csv(), f"call-{call_id}.csv",
                   "text/csv", key="call_csv")
