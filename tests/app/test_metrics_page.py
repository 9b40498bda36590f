"""Metrics page: empty state, charts with data, filters, CSV downloads."""

import csv
import io
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.store.sqlite import SQLiteStore
from tests.app.downloads import download_text, downloads  # noqa: F401 (fixture)
from tests.app.test_pages import run_page
from tests.seed_calls import seed

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_metrics() -> AppTest:
    return run_page("views/metrics.py")


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_empty_install_says_what_to_do_and_offers_demo_calls(data_dir):
    at = open_metrics()
    assert any("No calls yet" in i.value and "Talk" in i.value for i in at.info)
    assert any(b.label.startswith("Create") and "demo calls" in b.label for b in at.button)
    assert not at.error


def test_charts_figures_and_csv_downloads_with_data(data_dir, downloads):  # noqa: F811
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    ids = seed(store)
    at = open_metrics()
    assert not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Voice-to-voice p50"] == "700 ms"  # median of 600, 650, 700, 900, 1500
    assert metrics["Turns over 800 ms"] == "40%"
    assert metrics["Calls"] == "3" and metrics["Interrupted turns"] == "0 of 5"
    assert len(at.get("plotly_chart")) >= 8
    samples = _csv(download_text(at, downloads, "Download latency samples (CSV)"))
    assert sorted(float(r["ms"]) for r in samples if r["stage"] == "voice-to-voice") == [600, 650, 700, 900, 1500]
    dispositions = {r["disposition"]: r["calls"] for r in _csv(download_text(at, downloads, "Download dispositions (CSV)"))}
    assert dispositions == {"resolved": "2", "escalated": "1"}
    dead = _csv(download_text(at, downloads, "Download dead air (CSV)"))
    assert len(dead) == 3 and {float(r["silence_s"]) for r in dead} == {4.8}
    costs = _csv(download_text(at, downloads, "Download cost per call (CSV)"))
    assert {r["call_id"] for r in costs} == set(ids) and {float(r["stt_seconds"]) for r in costs} == {2.0}
    assert any("no breaker state" in c.value for c in at.caption)


def test_target_and_filters_change_the_figures(data_dir):
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    seed(store)
    at = open_metrics()
    at.number_input[0].set_value(1000.0).run()  # latency target
    assert {m.label: m.value for m in at.metric}["Turns over 1000 ms"] == "20%"
    at.multiselect(key="metrics_dispositions").select("escalated").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calls"] == "1" and metrics["Voice-to-voice p50"] == "1075 ms"
    at.multiselect(key="metrics_dispositions").unselect("escalated").run()
    at.multiselect(key="metrics_sources").select("talk").run()
    assert {m.label: m.value for m in at.metric}["Calls"] == "1"
    # pricing the same usage as cloud providers costs more than the embedded stack's zero
    at.selectbox(key="price_as").select("deepgram + openai + elevenlabs").run()
    assert {m.label: m.value for m in at.metric}["Total cost"] != "$0.0000"


def test_a_date_range_without_calls_explains_itself(data_dir):
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    seed(store)
    at = open_metrics()
    import datetime as dt

    long_ago = dt.date(2020, 1, 1)
    at.date_input(key="metrics_dates").set_value((long_ago, long_ago)).run()
    assert any("No calls match" in i.value for i in at.info)
