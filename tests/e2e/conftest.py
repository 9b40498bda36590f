"""Browser end-to-end tests: network isolation, a real Streamlit server, real Chromium.

Every test marked ``e2e`` runs inside a network namespace whose only interface is
loopback, so neither the Streamlit server nor Chromium can reach another machine:

* If this pytest process already runs in such a namespace (``tests/e2e/run_in_netns.sh``,
  or a CI job that provides one), the tests run directly.
* Otherwise each e2e test is replaced by a proxy item that re-runs that one test in a
  child ``pytest`` started under ``unshare --net`` (root only) and reports its outcome
  (pass, fail with the child's output, or skip with the child's reason). The proxy sets
  nothing up itself: no server or browser ever starts outside the namespace.

So ``pytest tests/e2e`` works as is, as root. Without root or ``unshare`` the tests skip
and say why.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:  # `pytest tests/e2e` without an installed package
    sys.path.insert(0, str(PROJECT_ROOT))

from . import netns  # noqa: E402

ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts" / "e2e"
# Bound on one e2e test run in its namespace (the test itself aims for well under this).
CHILD_TIMEOUT_S = 175.0
SERVER_START_TIMEOUT_S = 45.0
_LOADED_AT = time.time()  # figures older than this session are not reported


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: real browser end-to-end test (Chromium + Streamlit, loopback-only netns)"
    )


# --- running e2e tests inside a loopback-only network namespace -------------------------


class NetnsChildFailed(Exception):
    """The e2e test failed inside its namespace; the message carries the child's output."""


class NetnsProxyItem(pytest.Item):
    """Stands in for one e2e test: runs it in a child pytest inside ``unshare --net``."""

    def __init__(self, *, target: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.target = target

    def runtest(self) -> None:
        reason = netns.unavailable_reason()
        if reason:
            if os.environ.get(netns.REQUIRE_FLAG) == "1":
                pytest.fail(f"{netns.REQUIRE_FLAG}=1 and {reason}", pytrace=False)
            pytest.skip(reason)
        with tempfile.TemporaryDirectory(prefix="vc-e2e-") as tmp:
            report = Path(tmp) / "junit.xml"
            argv = [
                sys.executable, "-m", "pytest", self.target,
                "-p", "no:cacheprovider", "-q", "-rA", "-s",
                f"--junitxml={report}",
                f"--basetemp={Path(tmp) / 'basetemp'}",
            ]
            echo = self.config.getoption("capture") == "no"  # `pytest -s`: stream it live
            output = _run_streaming(netns.wrap(argv), netns.child_env(), CHILD_TIMEOUT_S, echo)
            outcome, message = _junit_outcome(report)
        if outcome == "passed" and output.returncode == 0:
            return
        if outcome == "skipped":
            pytest.skip(f"(in network namespace) {message}")
        tail = "\n".join(output.lines)
        why = "timed out" if output.timed_out else f"exit code {output.returncode}"
        headline = message.splitlines()[0] if message else "(no failure message)"
        raise NetnsChildFailed(
            f"e2e test failed inside its network namespace ({why}): {headline}\n"
            f"--- child pytest output (last {len(output.lines)} lines) ---\n{tail}"
        )

    def repr_failure(self, excinfo, style=None):  # type: ignore[no-untyped-def, override]
        if isinstance(excinfo.value, NetnsChildFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.name} (in a loopback-only network namespace)"


@dataclass
class _ChildOutput:
    returncode: int
    timed_out: bool
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=400))


def _run_streaming(argv: list[str], env: dict[str, str], timeout_s: float, echo: bool) -> _ChildOutput:
    """Run ``argv`` keeping the tail of its output; with ``echo`` also print it as it comes."""
    out = _ChildOutput(returncode=-1, timed_out=False)
    proc = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while True:
        if time.monotonic() > deadline and not out.timed_out:
            out.timed_out = True
            _kill_group(proc)  # interrupted, pytest still reports where it was: keep reading
            deadline = time.monotonic() + 10.0
        elif time.monotonic() > deadline:
            break
        if not sel.select(timeout=0.5):
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        out.lines.append(line.rstrip("\n"))
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
    sel.close()
    try:
        out.returncode = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out.returncode = proc.wait(timeout=10)
    return out


def _kill_group(proc: subprocess.Popen, grace_s: float = 15.0) -> None:  # type: ignore[type-arg]
    """Interrupt the child's process group (fixtures tear down), then kill what is left."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _junit_outcome(path: Path) -> tuple[str, str]:
    """('passed' | 'failed' | 'skipped' | 'missing', message) of the single test case."""
    if not path.exists():
        return "missing", "the child pytest wrote no report"
    cases = ET.parse(path).getroot().iter("testcase")
    for case in cases:
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is not None:
                return "failed", node.get("message", "")
        node = case.find("skipped")
        if node is not None:
            return "skipped", node.get("message", "")
        return "passed", ""
    return "missing", "the child pytest ran no test (was it deselected or not collected?)"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if netns.isolated():
        return
    if os.environ.get(netns.ENV_FLAG) == "1":
        # We were meant to be isolated but are not: never run the browser test on the host.
        for item in items:
            if item.get_closest_marker("e2e"):
                item.add_marker(pytest.mark.skip(
                    reason=f"{netns.ENV_FLAG}=1 but interfaces are {netns.interfaces()}; refusing "
                    "to run a browser test outside a loopback-only namespace"
                ))
        return
    for i, item in enumerate(items):
        if not item.get_closest_marker("e2e") or not isinstance(item, pytest.Function):
            continue
        proxy = NetnsProxyItem.from_parent(
            item.parent, name=item.name, target=f"{item.path}::{item.name}"
        )
        for mark in item.iter_markers():
            proxy.own_markers.append(mark)
            proxy.keywords[mark.name] = mark
        items[i] = proxy


# --- fixtures used inside the namespace ---------------------------------------------------


@pytest.fixture(autouse=True)
def _require_isolation(request: pytest.FixtureRequest) -> None:
    """Belt and braces: an e2e test body never runs with a route off this machine."""
    if request.node.get_closest_marker("e2e") and not netns.isolated():
        pytest.skip(f"not in a loopback-only network namespace (interfaces: {netns.interfaces()})")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the server's child process: get SIGTERM if pytest dies without tearing down."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class StreamlitServer:
    url: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen  # type: ignore[type-arg]

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no server log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def db_path(self) -> Path:
        return self.data_dir / "voice_copilot.sqlite3"


@pytest.fixture
def streamlit_server(tmp_path: Path, artifacts_dir: Path) -> Iterator[StreamlitServer]:
    """``streamlit run app.py`` on 127.0.0.1 with a private data dir."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    env = dict(os.environ)
    env.update(
        VC_DATA_DIR=str(data_dir),
        # models built from the pack are shared across runs (a fresh store, warm caches)
        VC_CACHE_DIR=str(PROJECT_ROOT / "data" / "test-cache" / "cache"),
        VC_ICE_LOOPBACK="true",
        VC_LOG_LEVEL="INFO",
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
        STREAMLIT_SERVER_FILE_WATCHER_TYPE="none",
        PYTHONUNBUFFERED="1",
    )
    argv = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    server = StreamlitServer(f"http://127.0.0.1:{port}", data_dir, log_path, proc)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"streamlit exited with code {proc.returncode} before serving.\n"
                    f"--- server log ---\n{server.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit did not serve {server.url} within {SERVER_START_TIMEOUT_S:.0f} s.\n"
                    f"--- server log ---\n{server.log_tail()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        shutil.copyfile(log_path, artifacts_dir / "streamlit.log")


# --- Chromium with a fake microphone (shared by browser tests) ------------------------------

# Debian's `chromium` package, headless as root, fake microphone from a WAV file, WebRTC on
# loopback allowed, autoplay without a gesture (the agent's voice plays at once).
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
]


@contextmanager
def chromium_page(
    fake_mic_wav: Path,
    origin: str,
    init_scripts: Sequence[str] = (),
    viewport: tuple[int, int] = (1280, 1000),
    default_timeout_ms: int = 15_000,
) -> Iterator[Any]:
    """A Playwright page in Debian Chromium whose microphone plays ``fake_mic_wav``.

    ``init_scripts`` run in every frame (the webrtc widget's iframe included) before the
    frame's own scripts. The microphone permission is granted for ``origin``. Skips when
    Chromium is not installed; never downloads a browser.
    """
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={fake_mic_wav}"],
            timeout=30_000,
        )
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            context.grant_permissions(["microphone"], origin=origin)
            for script in init_scripts:
                context.add_init_script(script)
            page = context.new_page()
            page.set_default_timeout(default_timeout_ms)
            yield page
        finally:
            browser.close()


def _fresh_json(name: str) -> dict[str, Any] | None:
    """An artifact JSON written during this pytest session (None if absent or older)."""
    import json

    path = ARTIFACTS_DIR / name
    if not path.exists() or path.stat().st_mtime < _LOADED_AT:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """Print the latency and WER figures the e2e tests wrote during this session."""
    _summarize_talk(terminalreporter)
    path = ARTIFACTS_DIR / "live_latency.json"
    data = _fresh_json("live_latency.json")
    if data is None:
        return
    lat, srv = data.get("latency_ms", {}), data.get("server_speech_end_to_final_ms", {})
    tr = terminalreporter
    tr.section("live browser e2e")
    tr.write_line(f"WER {data.get('wer')} over {data.get('sentences')} sentences")
    tr.write_line(
        f"speech end -> text on page: p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, "
        f"max {lat.get('max')} ms (n={lat.get('n')})"
    )
    tr.write_line(f"server speech end -> final: p50 {srv.get('p50')} ms, p95 {srv.get('p95')} ms")
    partial = data.get("speech_start_to_first_partial_ms", {})
    tr.write_line(f"speech start -> first partial on page: p50 {partial.get('p50')} ms")
    tr.write_line(f"origin: {data.get('method', {}).get('capture_origin')}; test {data.get('test_duration_s')} s")
    tr.write_line(f"details: {path}")


def _summarize_talk(tr: Any) -> None:
    data = _fresh_json("talk_latency.json")
    if data is None:
        return
    browser, turn = data.get("browser", {}), data.get("turn", {})
    tr.section("talk browser e2e")
    tr.write_line(
        f"caller speech end -> agent answer audio in the browser: "
        f"{browser.get('voice_to_voice_ms')} ms (server-measured {turn.get('voice_to_voice_ms')} ms)"
    )
    tr.write_line(
        f"server stages (ms): endpoint {turn.get('endpoint_ms')}, stt {turn.get('stt_ms')}, "
        f"reply 1st token {turn.get('reply_first_token_ms')}, tts 1st audio {turn.get('tts_first_audio_ms')}"
    )
    tr.write_line(f"agent audio heard as: {data.get('received_answer_transcript')!r}")
    tr.write_line(f"test {data.get('test_duration_s')} s; details: {ARTIFACTS_DIR / 'talk_latency.json'}")
