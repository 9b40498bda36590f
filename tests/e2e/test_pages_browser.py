"""Every page in a real browser: direct URLs, and every page with calls in the store.

* Each page's URL opened directly on a freshly started server (a bookmark, a shared link,
  a reload after a restart) shows the app's own navigation (the titles ``app.py``
  declares with ``st.navigation``) and that page's heading, not Streamlit's file-based
  navigation (see "The `pages/` folder and direct URLs" in docs/architecture.md).
  Screenshots go to ``test-artifacts/e2e/direct_<name>.png``.
* With stored calls seeded, each page listed in the app's navigation (read from the
  sidebar, so pages added later are covered too) renders in Debian Chromium with no
  exception or error box; the Metrics page draws plotly charts (``.js-plotly-plot``) in
  every tab; the Calls page shows the list and a call. Screenshots go to
  ``test-artifacts/e2e/pages_<name>.png``.

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

# The navigation app.py declares, in order; each page's URL, the heading it shows and the
# URL it ends up at (the root opens Live at /live).
NAV_TITLES = ["Live", "Talk", "Live copilot", "Knowledge", "Metrics", "Calls", "Health"]
DIRECT_URLS = [
    ("", re.compile(r"^Live transcript$"), "live"),
    ("live", re.compile(r"^Live transcript$"), "live"),
    ("talk", re.compile(r"^Talk to \S"), "talk"),
    ("copilot", re.compile(r"^Live copilot$"), "copilot"),
    ("knowledge", re.compile(r"^Knowledge$"), "knowledge"),
    ("metrics", re.compile(r"^Metrics$"), "metrics"),
    ("calls", re.compile(r"^Calls$"), "calls"),
    ("health", re.compile(r"^Health and settings$"), "health"),
]


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


def _nav_titles(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The sidebar navigation's link titles (an icon, if any, comes first in the text)."""
    links = page.get_by_test_id("stSidebarNavLink")
    return [links.nth(i).inner_text().split("\n")[-1].strip() for i in range(links.count())]


@pytest.mark.parametrize(("path", "heading", "lands_at"), DIRECT_URLS, ids=[p or "root" for p, _, _ in DIRECT_URLS])
def test_direct_url_on_a_fresh_server_shows_the_apps_navigation(
    path: str, heading: re.Pattern[str], lands_at: str, streamlit_server, artifacts_dir: Path, tmp_path: Path
) -> None:
    # A new server per page (this fixture is per test): no session has run app.py yet.
    with chromium_page(_silent_wav(tmp_path / "silence.wav"), streamlit_server.url,
                       viewport=(1400, 1000), default_timeout_ms=60_000) as page:
        page.goto(f"{streamlit_server.url}/{path}", wait_until="domcontentloaded")
        page.locator("h1").first.wait_for()
        _wait_for_run(page)
        page.screenshot(path=str(artifacts_dir / f"direct_{path or 'root'}.png"), full_page=True)
        assert _nav_titles(page) == NAV_TITLES, (
            f"/{path} on a fresh server: the sidebar shows {_nav_titles(page)}"
        )
        first_heading = page.locator("h1").first.inner_text().strip()
        assert heading.search(first_heading), f"/{path} shows the heading {first_heading!r}"
        page.wait_for_url(re.compile(rf"/{lands_at}/?$"), timeout=10_000)
        assert page.get_by_role("dialog").count() == 0, page.get_by_role("dialog").all_inner_texts()
        errors = page.locator(ERROR_BOXES)
        assert errors.count() == 0, f"/{path}: {errors.all_inner_texts()}"


def test_every_page_renders_with_data(streamlit_server, artifacts_dir: Path, tmp_path: Path) -> None:
    store = SQLiteStore(streamlit_server.db_path)
    seed(store)
    store.close()
    with chromium_page(_silent_wav(tmp_path / "silence.wav"), streamlit_server.url,
                       viewport=(1400, 1100), default_timeout_ms=60_000) as page:
        page.goto(streamlit_server.url, wait_until="domcontentloaded")
        page.locator("h1").first.wait_for()
        _wait_for_run(page)  # the sidebar lists app.py's navigation once the script has run
        links = page.get_by_test_id("stSidebarNavLink")
        titles = _nav_titles(page)
        assert titles == NAV_TITLES, titles
        pages = [(title, links.nth(i).get_attribute("href")) for i, title in enumerate(titles)]
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
