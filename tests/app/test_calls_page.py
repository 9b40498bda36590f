"""Calls page: search and filters, call detail, exports of one call and of the list."""

import csv
import io
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.store.sqlite import SQLiteStore
from tests.app.downloads import download_text, downloads  # noqa: F401 (fixture)
from tests.app.test_pages import run_page
from tests.seed_calls import seed

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_calls() -> AppTest:
    return run_page("views/calls.py")


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_empty_install_says_what_to_do(data_dir):
    at = open_calls()
    assert any("No calls yet" in i.value for i in at.info)
    assert any("demo calls" in b.label for b in at.button)


def test_list_detail_and_exports(data_dir, downloads):  # noqa: F811
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    newest, _, oldest = seed(store)
    at = open_calls()
    assert not at.error
    listed = _rows(download_text(at, downloads, "Download list (CSV)"))
    assert [r["call_id"] for r in listed][0] == newest and len(listed) == 3
    assert json.loads(download_text(at, downloads, "Download list (JSON)"))[2]["disposition"] == "escalated"
    # the newest call is open: transcript with times and speakers, who confirmed the disposition
    assert any("confirmed by agent-7" in m.value for m in at.markdown)
    assert any("Demo call" in c.value for c in at.caption)
    one = json.loads(download_text(at, downloads, "Download call (JSON)"))
    assert one["call"]["call_id"] == newest and one["call"]["intent"] == "duplicate_charge"
    assert [(t["speaker"], t["t_start_s"]) for t in one["transcript"]] == [
        ("caller", 0.5), ("agent", 3.1), ("caller", 10.0)]
    assert [t["voice_to_voice_ms"] for t in one["turns"]] == [600, 900]
    assert one["kb_shown"] == ["duplicate_charge-article"]
    transcript = _rows(download_text(at, downloads, "Download transcript (CSV)"))
    assert transcript[0]["text"] == "hi i think my card was charged twice"
    # open another call
    at.selectbox(key="call_pick").select(oldest).run()
    assert json.loads(download_text(at, downloads, "Download call (JSON)"))["call"]["disposition"] == "escalated"


def test_search_and_filters_narrow_the_list(data_dir, downloads):  # noqa: F811
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    seed(store)
    at = open_calls()
    at.text_input(key="calls_text").input("WALLET").run()
    listed = _rows(download_text(at, downloads, "Download list (CSV)"))
    assert [r["intent"] for r in listed] == ["card_lost_stolen"]
    at.text_input(key="calls_text").input("").run()
    at.multiselect(key="calls_intents").select("scam_report").run()
    assert [r["source"] for r in _rows(download_text(at, downloads, "Download list (CSV)"))] == ["talk"]
    at.multiselect(key="calls_dispositions").select("resolved").run()
    assert any("No calls match" in i.value for i in at.info)


def test_recorded_call_plays_back(data_dir):
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    newest = seed(store)[0]
    import numpy as np

    from core.pipeline.recording import WavRecorder

    rec = WavRecorder(data_dir / "recordings" / f"{newest}.wav")
    rec.write(np.zeros(16000, np.int16))
    rec.close()
    at = open_calls()
    assert len(at.get("audio")) == 1


def test_pages_that_start_calls_show_a_consent_notice_only_when_recording(data_dir, monkeypatch):
    for page in ("views/talk.py", "views/live.py"):
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.switch_page(page)
        at.run()
        assert not any("recorded" in w.value for w in at.warning)
    monkeypatch.setenv("VC_RECORD_CALLS", "true")
    monkeypatch.setenv("VC_DATA_DIR", str(data_dir / "recording-on"))  # a fresh process-wide services
    for page in ("views/talk.py", "views/live.py"):
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.switch_page(page)
        at.run()
        assert any("This call is recorded" in w.value for w in at.warning), page
