"""AppTest smoke tests: every page renders without exceptions, with and without data."""

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.store.sqlite import SQLiteStore

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = ["views/live.py", "views/talk.py", "views/copilot.py", "views/knowledge.py", "views/metrics.py", "views/calls.py", "views/health.py"]


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page != PAGES[0]:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_fresh_server_uses_the_apps_navigation_not_a_pages_folder():
    """Streamlit's first session decides, for the whole process, whether the app is a legacy
    ``pages/`` app (a folder named ``pages`` next to the entry script); if it is, a direct
    page URL runs that file without app.py until some session opens ``/``. Asked here in a
    fresh interpreter, as a new server would (the class flag is process-wide)."""
    probe = (
        "import sys; from streamlit.runtime.pages_manager import PagesManager as P; "
        "P(sys.argv[1]); print(P.uses_pages_directory)"
    )
    out = subprocess.run([sys.executable, "-c", probe, APP], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", (
        "a pages/ folder next to app.py: direct page URLs would get Streamlit's file-based "
        "navigation (docs/architecture.md, 'The `pages/` folder and direct URLs')"
    )


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_install(page, data_dir):
    at = run_page(page)
    assert not at.error, [e.value for e in at.error]


def test_live_page_shows_persisted_calls_after_restart(data_dir):
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    call = store.create_call("browser")
    store.add_segment(call.id, "caller", "i lost my debit card yesterday", 1200, 3100)
    store.end_call(call.id)
    store.close()
    at = run_page("views/live.py")  # a fresh script run = a reload / a restarted app
    text = " ".join(m.value for m in at.markdown)
    assert "i lost my debit card yesterday" in text
    assert "0:01.2" in text  # the line's time within the call
    assert any(call.id in e.label for e in at.expander)


def test_health_page_shows_providers_and_masks_secrets(data_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-verysecretvalue123")
    at = run_page("views/health.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Speech to text"] == "moonshine" and metrics["Store"] == "sqlite"
    dumped = " ".join(str(j.value) for j in at.json)
    assert "verysecret" not in dumped


def test_missing_provider_key_is_a_clear_error_on_start(data_dir, monkeypatch):
    monkeypatch.setenv("VC_TTS_PROVIDER", "elevenlabs")
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert any("ELEVENLABS_API_KEY" in e.value for e in at.error)


def test_copilot_attaches_to_the_newest_active_call_by_itself(data_dir):
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    old = store.create_call("browser")
    store.add_segment(old.id, "caller", "what are your branch hours", 0, 1000)
    new = store.create_call("talk")
    store.add_segment(new.id, "caller", "hi i think my card was charged twice for the same purchase", 0, 2000)
    at = run_page("views/copilot.py")
    text = " ".join(m.value for m in at.markdown)
    assert new.id in text and "charged twice" in text
    assert any("duplicate" in m.value.lower() or "charged" in m.value.lower() for m in at.markdown)
    assert store.events(new.id, "kb_shown")
    # the agent switches to the other active call
    at.selectbox(key="copilot_choice").select_index(2).run()  # [auto, newest, older]
    assert "branch hours" in " ".join(m.value for m in at.markdown)
    # using a suggestion is recorded
    at.selectbox(key="copilot_choice").select_index(0).run()
    used = [b for b in at.button if b.label == "Used this"]
    assert used
    used[0].click().run()
    assert store.events(new.id, "reply_used")


def test_copilot_shows_the_whole_intent_and_sentiment_label():
    """Intent and sentiment are text that wraps in their narrow columns (as the copilot page
    lays them out): st.metric cut them off with an ellipsis ("duplica…", "neut…"), and
    its value is the whole text here, so the test also checks that they are not metrics."""

    def page():
        import streamlit as st

        from components.copilot import render_intent, render_sentiment
        from core.copilot.live import IntentView, SentimentPoint

        _, right = st.columns([3, 2])
        c1, c2 = right.columns(2)
        with c1:
            render_intent(IntentView("duplicate_charge", 0.87))
        with c2:
            render_sentiment([SentimentPoint(1, 0, -0.6, "negative"), SentimentPoint(2, 3000, 0.1, "neutral")])

    at = AppTest.from_function(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [m.label for m in at.metric]
    texts = [m.value for m in at.markdown]
    captions = [c.value for c in at.caption]
    assert "**duplicate charge**" in texts and ":material/sentiment_neutral: **neutral**" in texts, texts
    assert captions == ["Intent", "87% confidence", "Sentiment", ":material/trending_up: improving"], captions


def test_copilot_proposes_a_disposition_when_the_call_ends_and_records_the_agents_choice(data_dir):
    store = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    call = store.create_call("talk")
    lines = [
        ("caller", "hi i lost my debit card yesterday i think it was stolen"),
        ("agent", "i am sorry to hear that i have blocked the card so nobody can use it"),
        ("caller", "thank you can you send me a new one"),
        ("agent", "yes i have ordered a replacement card it arrives in five to seven business days"),
    ]
    for i, (who, text) in enumerate(lines):
        store.add_segment(call.id, who, text, i * 3000, i * 3000 + 2500)
    at = run_page("views/copilot.py")
    assert not [s for s in at.subheader if s.value == "Wrap-up"]  # live: no wrap-up yet
    store.end_call(call.id)
    at.run()
    assert [s for s in at.subheader if s.value == "Wrap-up"]
    proposed = store.events(call.id, "disposition_proposed")
    assert len(proposed) == 1
    assert (proposed[0].payload["disposition"], proposed[0].payload["sub_disposition"]) == (
        "resolved",
        "card_replaced",
    )
    assert any("lost my debit card" in s["text"] for s in proposed[0].payload["support"])
    assert "Proposed: **Resolved / Card blocked and replacement ordered**" in " ".join(m.value for m in at.markdown)
    # the agent changes the sub-disposition and files it
    at.text_input(key="agent_name").input("Dana")
    at.selectbox(key=f"wrap-{call.id}-sub").select("dispute_opened")
    [b for b in at.button if b.label == "Confirm disposition"][0].click().run()
    confirmed = store.events(call.id, "disposition_confirmed")
    assert len(confirmed) == 1
    filed = confirmed[0].payload
    assert filed["sub_disposition"] == "dispute_opened" and filed["overridden"] is True
    assert filed["confirmed_by"] == "Dana" and filed["proposed_sub_disposition"] == "card_replaced"
    assert any("changed from the proposal" in s.value for s in at.success)
    assert len(store.events(call.id, "disposition_proposed")) == 1  # not proposed again on rerun


def test_call_pages_say_when_a_stage_runs_degraded():
    def page():
        from components.providers import render_degraded_banner
        from core.resilience import ChainStatus

        render_degraded_banner([
            ChainStatus("llm", ("openai", "embedded"), "embedded", True, ()),
            ChainStatus("tts", ("elevenlabs", "espeak"), "elevenlabs", False, ()),
        ])

    at = AppTest.from_function(page).run()
    assert len(at.warning) == 1
    text = at.warning[0].value
    assert "replies on `embedded` (instead of `openai`)" in text and "elevenlabs" not in text
