"""Health page: the reply chain, its breakers, masked keys and a working Check button."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.providers.servers import OpenAIServer

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_health_shows_the_chain_masks_the_key_and_checks_the_provider(data_dir, monkeypatch):
    with OpenAIServer() as server:
        monkeypatch.setenv("VC_LLM_PROVIDER", "openai")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-verysecretvalue123")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        at = AppTest.from_file(APP, default_timeout=180)
        at.run()
        at.switch_page("views/health.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        page = " ".join(str(m.value) for m in at.markdown) + " ".join(str(c.value) for c in at.caption)
        assert "serving: `openai`" in page and "openai → embedded" in page
        tables = " ".join(str(d.value) for d in at.dataframe)
        assert "verysecret" not in tables and "closed" in tables
        at.button(key="check-llm-openai").click()
        at.run()
        assert any("models available" in str(c.value) for c in at.caption), [c.value for c in at.caption]
        assert server.count("/models") == 1
