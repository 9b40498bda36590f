"""Every page in a real browser with calls in the store: charts render, no error boxes.

Seeds stored calls, then opens each page listed in the app's navigation (read from the
sidebar, so pages added later are covered too) in Debian Chromium, waits for the script
run to finish, and checks: no exception or error box; the Metrics page draws plotly
charts (``.js-plotly-plot``) in every tab; the Calls page shows the list and a call.
Screenshots go to ``test-artifacts/e2e/pages_<name>.png``.

Runs in a loopback-only network namespace (see conftest.py): ``pytest -m e2e tests/e2e``.
"""

from __future__ import annotations

import re
import time
import wave
from pathlib import Path

import pytest

from core.store.sqlite import SQLiteStore
from tests.e2e.conftest import chromium_page
from tests.seed_calls import seed

pytestmark = pytest.mark.e2e
RUN_DONE_TIMEOUT_S = 60.0
SETTLE_S = 1.0
ERROR_BOXES = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def _silent_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 16000)
    return path


def _wait_for_run(page) -> None:  # type: ignore[no-untyped-def]
    """Until the app's script run has finished (and stays finished for a moment)."""
    deadline = time.monotonic() + RUN_DONE_TIMEOUT_S
    app = page.locator('[data-testid="stApp"]')
    while time.monotonic() < deadline:
        if app.get_attribute("data-test-script-state") == "notRunning":
            time.sleep(SETTLE_S)
            if app.get_attribute("data-test-script-state") == "notRunning":
                return
        time.sleep(0.2)
    raise AssertionError("the page's script run did not finish")


def test_every_page_renders_with_data(streamlit_server, artifacts_dir: Path, tmp_path: Path) -> None:
    store = SQLiteStore(streamlit_server.db_path)
    seed(store)
    store.close()
    with chromium_page(_silent_wav(tmp_path / "silence.wav"), streamlit_server.url,
                       viewport=(1400, 1100), default_timeout_ms=60_000) as page:
        page.goto(streamlit_server.url, wait_until="domcontentloaded")
        page.locator("h1").first.wait_for()
        _wait_for_run(page)  # the sidebar lists app.py's navigation once the script has run
        links = page.locator('[data-testid="stSidebarNavLink"]')
        pages = [(links.nth(i).inner_text().split("\n")[-1].strip(), links.nth(i).get_attribute("href"))
                 for i in range(links.count())]
        titles = [t for t, _ in pages]
        assert {"Metrics", "Calls"} <= set(titles), titles
        for title, href in pages:
            page.goto(href, wait_until="domcontentloaded")
            page.locator("h1").first.wait_for()
            _wait_for_run(page)
            name = re.sub(r"\W+", "_", title.lower()).strip("_")
            if title == "Metrics":
                page.locator(".js-plotly-plot").first.wait_for()
                for tab in page.get_by_role("tab").all():
                    tab.click()
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(artifacts_dir / f"pages_{name}_{tab.inner_text().strip()[:12]}.png"),
                                    full_page=True)
                charts = page.locator(".js-plotly-plot").count()
                assert charts >= 8, f"{charts} plotly charts on the Metrics page"
                assert page.locator(".js-plotly-plot .main-svg").count() >= charts  # drawn, not just mounted
            if title == "Calls":
                assert page.get_by_text("hi i think my card was charged twice").count() >= 1
                assert page.get_by_text("confirmed by agent-7").count() == 1
            page.screenshot(path=str(artifacts_dir / f"pages_{name}.png"), full_page=True)
            errors = page.locator(ERROR_BOXES)
            assert errors.count() == 0, f"{title}: {errors.all_inner_texts()}"
