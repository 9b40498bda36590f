"""The Live page in a real browser: fake microphone → WebRTC → transcript on the page.

Chromium plays a WAV of scripted caller speech as its microphone; the test presses
Start in the streamlit-webrtc widget, watches transcript lines appear in the DOM, presses
Stop, and checks the transcript (WER), the stored call, the page after a reload, and the
speech-end → text-on-page latency.

Runs in a loopback-only network namespace (see conftest.py): ``pytest tests/e2e``.
Artifacts (screenshots, latency JSON, server log, the WAV) go to ``test-artifacts/e2e/``.

Latency method (approximate, reported not asserted):
* Capture origin: the wall-clock time (browser ``Date.now()``) of sample 0 of the fake
  capture file. Chromium starts reading the file when getUserMedia opens the fake
  device, so an init script wraps ``getUserMedia`` in the widget's iframe and taps the
  returned stream with a Web Audio ``AnalyserNode`` polled every 10 ms. The first sample
  above -40 dBFS is the onset of the first sentence, whose position in the file is known
  (``spans[0].start_ms``), so ``origin = onset_time - spans[0].start_ms``. This is what the
  browser actually captured, independent of how long getUserMedia took. If no onset is
  seen, ``origin = getUserMedia resolve time`` (the file starts at about that moment).
  Both values are reported; they typically agree within tens of ms.
* Speech end of sentence i: ``origin + spans[i].end_ms`` (last voiced sample in the file).
* Text on page: a MutationObserver plus a 50 ms poll in the page records the first time
  each final ``div.vc-line`` is in the DOM.
* Latency = text on page − speech end, for the last line matched to each sentence. It
  includes WebRTC transport, the 500 ms end-of-utterance silence, decoding, the UI poll
  interval (0.3 s) and rendering. The server's own speech-end → final figure (stored per
  utterance) is reported alongside.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.eval import read_lines

pytestmark = pytest.mark.e2e

# The first six of the pack's held-out caller sentences, in file order (not picked for how
# the recogniser does on them), spoken by the Piper voice: the bound covers the browser →
# WebRTC → server path and the recogniser together.
SENTENCES = read_lines(Path(__file__).resolve().parents[2] / "packs" / "bank" / "eval" / "caller_sentences.txt")[:6]
LEAD_S = 3.0        # the first second or so is lost to WebRTC set-up
GAP_S = 1.5
TRAIL_S = 40.0      # Chromium loops the file; the test is done long before the second pass
# The product's target is 0.05; measured 0.037, 0.074 and 0.049 in three runs of the same audio
# (the errors vary with how the browser path segments it: "card" heard as "car"), so the
# test bounds it at 0.10 and reports the figure; docs/speech.md keeps the record.
MAX_WER = 0.10
ONSET_THRESHOLD = 0.01  # -40 dBFS; espeak's voiced span is measured at 300/32768

PAGE_READY_TIMEOUT_MS = 60_000    # first page load builds the speech models
CONNECT_TIMEOUT_S = 20.0          # Start → getUserMedia → audio flowing
LAST_LINE_GRACE_S = 12.0          # after the last sentence ends, wait at most this long
SETTLE_S = 1.5                    # no new line for this long → transcript is complete
STOP_TIMEOUT_MS = 30_000
TEST_BUDGET_S = 150.0             # the whole test must finish well under 3 minutes

WEBRTC_IFRAME = 'iframe[title*="webrtc"]'

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
]

# Runs in every frame (the widget's iframe included) before its scripts.
CAPTURE_PROBE_JS = """
(() => {
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia || window.__vcCapture) return;
  const cap = {calls: 0, gumCalledAt: null, gumResolvedAt: null, onsetAt: null,
               sampleRate: null, regions: [], errors: []};
  window.__vcCapture = cap;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    const gen = ++cap.calls;
    cap.gumCalledAt = Date.now();
    const stream = await original(constraints);
    if (gen !== cap.calls) return stream;
    cap.gumResolvedAt = Date.now();
    cap.onsetAt = null; cap.regions = [];
    try { watch(stream, gen); } catch (e) { cap.errors.push(String(e)); }
    return stream;
  };
  function watch(stream, gen) {
    if (!stream.getAudioTracks().length) return;
    const ctx = new AudioContext();
    cap.sampleRate = ctx.sampleRate;
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    const TH = %(threshold)f;
    let inSpeech = false, lastLoud = 0;
    const timer = setInterval(() => {
      if (gen !== cap.calls || stream.getAudioTracks().every(t => t.readyState === 'ended')) {
        clearInterval(timer); ctx.close(); return;
      }
      analyser.getFloatTimeDomainData(buf);
      const now = Date.now(), n = buf.length, sr = ctx.sampleRate;
      let first = -1, last = -1;
      for (let i = 0; i < n; i++) if (Math.abs(buf[i]) > TH) { if (first < 0) first = i; last = i; }
      if (first >= 0) {
        const t0 = now - (n - first) * 1000 / sr;
        lastLoud = now - (n - 1 - last) * 1000 / sr;
        if (!inSpeech) {
          inSpeech = true;
          cap.regions.push([t0, null]);
          if (cap.onsetAt === null) cap.onsetAt = t0;
        }
      } else if (inSpeech && now - lastLoud > 400) {
        inSpeech = false;
        cap.regions[cap.regions.length - 1][1] = lastLoud;
      }
    }, 10);
  }
})();
"""

# Runs in the app page: first time each final transcript line is in the DOM.
LINE_WATCH_JS = """
() => {
  if (window.__vcLines) return;
  const lines = [], seen = new Set(), partials = [], seenPartials = new Set();
  window.__vcLines = lines;
  window.__vcPartials = partials;
  const scan = () => {
    const now = Date.now();
    for (const el of document.querySelectorAll('.vc-partial')) {
      const text = el.textContent.replace(/^\\s*…\\s*/, '').trim();
      if (!text || seenPartials.has(text)) continue;
      seenPartials.add(text);
      partials.push({at: now, text});
    }
    for (const el of document.querySelectorAll('.vc-line')) {
      if (el.closest('details, [data-testid="stExpander"]')) continue;  // recent-calls list
      const code = el.querySelector('code'), who = el.querySelector('b');
      const extra = el.querySelector('span');
      let text = el.textContent;
      if (extra) text = text.slice(0, text.length - extra.textContent.length);
      // drop the "m:ss.s Caller: " prefix
      if (code && text.startsWith(code.textContent)) text = text.slice(code.textContent.length).trimStart();
      if (who && text.startsWith(who.textContent)) text = text.slice(who.textContent.length);
      text = text.replace(/^:\\s*/, '').trim();
      const key = (code ? code.textContent : '') + '|' + text;
      if (seen.has(key)) continue;
      seen.add(key);
      lines.push({at: now, offset: code ? code.textContent : '',
                  speaker: el.getAttribute('data-speaker') || (who ? who.textContent : ''),
                  text});
    }
  };
  new MutationObserver(scan).observe(document.body,
      {subtree: true, childList: true, characterData: true});
  setInterval(scan, 50);
  scan();
}
"""


# --- helpers -------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def _words(text: str) -> set[str]:
    from core.language.text import words

    return set(words(text))


def _match_sentence(text: str) -> int | None:
    """Index of the scripted sentence sharing most words with ``text`` (None if none)."""
    got = _words(text)
    best, best_score = None, 0.0
    for i, sentence in enumerate(SENTENCES):
        ref = _words(sentence)
        score = len(got & ref) / max(len(ref), 1)
        if score > best_score:
            best, best_score = i, score
    return best if best_score >= 0.3 else None


def _active_call(db_path: Path) -> str | None:
    from core.store.sqlite import SQLiteStore

    if not db_path.exists():
        return None
    store = SQLiteStore(db_path)
    try:
        calls = store.list_calls(limit=1, status="active")
    finally:
        store.close()
    return calls[0].id if calls else None


class Diagnostics:
    """Everything useful when the browser path fails: page text, console, server log."""

    def __init__(self, server: Any, artifacts: Path):
        self.server = server
        self.artifacts = artifacts
        self.page: Any = None
        self.console: list[str] = []

    def attach(self, page: Any) -> None:
        self.page = page
        page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"[:500]))
        page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"[:500]))

    def text(self) -> str:
        parts: list[str] = []
        if self.page is not None:
            try:
                self.page.screenshot(path=str(self.artifacts / "failure.png"), full_page=True)
            except Exception as exc:  # noqa: BLE001 - diagnostics must not raise
                parts.append(f"(no failure screenshot: {exc})")
            try:
                body = self.page.inner_text("body", timeout=3000)
                parts.append("--- page visible text ---\n" + body[-4000:])
            except Exception as exc:  # noqa: BLE001
                parts.append(f"(page text unavailable: {exc})")
            try:
                frame = self.page.frame_locator(WEBRTC_IFRAME)
                parts.append("--- webrtc widget text ---\n" + frame.locator("body").inner_text(timeout=2000))
            except Exception as exc:  # noqa: BLE001
                parts.append(f"(widget text unavailable: {exc})")
        if self.console:
            parts.append("--- browser console (last 30) ---\n" + "\n".join(self.console[-30:]))
        parts.append("--- streamlit server log (tail) ---\n" + self.server.log_tail(80))
        return "\n".join(parts)

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n{self.text()}", pytrace=False)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Fail with ``what``, the error and all diagnostics if the block raises."""
        try:
            yield
        except (pytest.fail.Exception, pytest.skip.Exception):
            raise
        except Exception as exc:  # noqa: BLE001 - any error here is a test failure
            message = f"{what}: {type(exc).__name__}: {exc}\n{self.text()}"
        else:
            return
        raise pytest.fail.Exception(message, pytrace=False) from None


def _wait(condition, timeout_s: float, poll_s: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll ``condition()`` until it returns a truthy value or the time is up (→ None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(poll_s)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def script_wav(tmp_path: Path, artifacts_dir: Path) -> tuple[Path, list[tuple[float, float, str]], float]:
    """The caller's microphone: WAV path, sentence spans (ms in the file), duration (ms)."""
    from core.speech.tts.espeak import script_audio, write_wav
    from core.speech.tts.piper import speak_16k

    audio, spans = script_audio(SENTENCES, gap_s=GAP_S, lead_s=LEAD_S, speak=speak_16k)
    rate = 16_000
    audio = np.concatenate([audio, np.zeros(int(TRAIL_S * rate), np.int16)])
    path = tmp_path / "caller.wav"
    write_wav(str(path), audio, rate)
    shutil.copyfile(path, artifacts_dir / "caller.wav")
    return path, spans, audio.size * 1000.0 / rate


@pytest.fixture
def browser_page(script_wav, streamlit_server, artifacts_dir: Path) -> Iterator[tuple[Any, Diagnostics]]:  # type: ignore[no-untyped-def]
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    wav, _, _ = script_wav
    (artifacts_dir / "failure.png").unlink(missing_ok=True)  # from an earlier run
    diag = Diagnostics(streamlit_server, artifacts_dir)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
            timeout=30_000,
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.grant_permissions(["microphone"], origin=streamlit_server.url)
            context.add_init_script(CAPTURE_PROBE_JS % {"threshold": ONSET_THRESHOLD})
            page = context.new_page()
            page.set_default_timeout(15_000)
            diag.attach(page)
            yield page, diag
        finally:
            browser.close()


# --- the test ------------------------------------------------------------------------------


def test_live_page_transcribes_browser_microphone(  # noqa: PLR0915 - one scenario, step by step
    browser_page, script_wav, streamlit_server, artifacts_dir: Path
) -> None:
    from core.language.text import wer
    from core.store.sqlite import SQLiteStore

    t_test = time.monotonic()
    page, diag = browser_page
    _, spans, file_ms = script_wav
    server = streamlit_server

    # 1. The Live page renders (the first run builds the speech models).
    page.goto(server.url, wait_until="domcontentloaded")
    with diag.step("the Live page did not become ready"):
        # The widget renders after the services (speech models) are loaded.
        start = page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Start")
        start.wait_for(timeout=PAGE_READY_TIMEOUT_MS)
    page.evaluate(LINE_WATCH_JS)
    page.screenshot(path=str(artifacts_dir / "01_ready.png"), full_page=True)

    # 2. Start: getUserMedia opens the fake microphone, WebRTC connects, audio flows.
    widget = page.locator(WEBRTC_IFRAME).element_handle().content_frame()
    assert widget is not None, "the webrtc iframe has no frame"
    start.click()
    capture = _wait(
        lambda: widget.evaluate("() => window.__vcCapture && window.__vcCapture.gumResolvedAt"
                                " ? window.__vcCapture : null"),
        CONNECT_TIMEOUT_S,
    )
    if not capture:
        diag.fail("getUserMedia never resolved in the webrtc widget after Start")
    with diag.step("the widget did not switch to Stop after Start"):
        page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Stop").wait_for(
            timeout=CONNECT_TIMEOUT_S * 1000
        )
    with diag.step("no call started on the server (WebRTC did not connect or no audio arrived)"):
        # The first audio frame on the server opens the call; the panel then shows it live.
        assert _wait(lambda: _active_call(server.db_path), CONNECT_TIMEOUT_S, 0.2), (
            f"no active call in {server.db_path} {CONNECT_TIMEOUT_S:.0f} s after Start"
        )
        page.get_by_text("Elapsed").first.wait_for(timeout=10_000)

    # 3. Transcript lines appear while the file plays; wait for the last sentence.
    onset_at = _wait(lambda: widget.evaluate("() => window.__vcCapture.onsetAt"), LEAD_S + 5.0)
    capture = widget.evaluate("() => window.__vcCapture")
    if onset_at:
        origin_ms = float(onset_at) - spans[0][0]
        origin_method = "first speech onset seen by a Web Audio analyser on the captured track"
    else:
        origin_ms = float(capture["gumResolvedAt"])
        origin_method = "getUserMedia resolve time (no onset detected)"
    last_end_wall = origin_ms + spans[-1][1]
    first_pass_end_wall = origin_ms + file_ms

    def lines() -> list[dict[str, Any]]:
        return list(page.evaluate("() => window.__vcLines || []"))

    shot_live = False
    while True:
        now_ms = page.evaluate("() => Date.now()")
        got = lines()
        if got and not shot_live:
            page.screenshot(path=str(artifacts_dir / "02_live.png"), full_page=True)
            shot_live = True
        after_last = [x for x in got if x["at"] > last_end_wall]
        if after_last and now_ms - got[-1]["at"] > SETTLE_S * 1000:
            break
        if now_ms > last_end_wall + LAST_LINE_GRACE_S * 1000:
            break
        if time.monotonic() - t_test > TEST_BUDGET_S:
            diag.fail("the test ran out of time while waiting for transcript lines")
        time.sleep(0.2)
    page.screenshot(path=str(artifacts_dir / "03_before_stop.png"), full_page=True)
    final_lines = lines()
    partials = list(page.evaluate("() => window.__vcPartials || []"))
    capture = widget.evaluate("() => window.__vcCapture")
    first_pass = [x for x in final_lines if x["at"] < first_pass_end_wall]
    if not first_pass:
        diag.fail("no transcript line appeared on the page")

    # 4. Stop: the call ends and the page shows it as the last call.
    page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Stop").click()
    with diag.step("after Stop the page never showed the call as ended"):
        page.get_by_text(re.compile(r"Last call · .* · ended")).first.wait_for(timeout=STOP_TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "04_stopped.png"), full_page=True)

    # 5. The store has the call, ended, with its segments (the ones shown live).
    with diag.step("the stored call does not match what the page showed"):
        store = SQLiteStore(server.db_path)
        try:
            calls = store.list_calls(limit=10)
            assert calls, f"no call in the store at {server.db_path}"
            assert len(calls) == 1, (
                f"one Start/Stop should make one call, the store has {len(calls)}: "
                f"{[(c.id, c.status, c.segment_count) for c in calls]}"
            )
            call = calls[0]
            assert call.status == "ended", f"call {call.id} is {call.status!r} after Stop ({call.error})"
            assert call.ended_at is not None, f"call {call.id} has no end time"
            segments = store.segments(call.id)
            timings = {t.segment_id: t for t in store.timings(call.id)}
        finally:
            store.close()
        stored_texts = [s.text for s in segments]
        page_texts = [x["text"] for x in final_lines]
        assert stored_texts == page_texts, (
            f"stored segments differ from the lines shown live:\n  stored: {stored_texts}\n"
            f"  page:   {page_texts}"
        )

    # 6. After a reload (a new browser session) the last call's lines are still shown.
    page.reload(wait_until="domcontentloaded")
    with diag.step("after a reload the last call was not shown as before"):
        page.get_by_text(re.compile(rf"Last call · {re.escape(call.id)} · ended")).first.wait_for(
            timeout=PAGE_READY_TIMEOUT_MS
        )
        page.locator(".vc-line").first.wait_for(timeout=15_000)
        page.evaluate(LINE_WATCH_JS)
        reloaded = [x["text"] for x in page.evaluate("() => window.__vcLines")]
        assert reloaded == stored_texts, (
            f"after a reload the page shows {reloaded}, the store has {stored_texts}"
        )
        # The rest of the page: the widget is ready again and the call is listed.
        page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Start").wait_for(timeout=15_000)
        page.get_by_text(call.id).nth(1).wait_for(timeout=15_000)  # heading + recent calls
    page.screenshot(path=str(artifacts_dir / "05_reloaded.png"), full_page=True)
    with diag.step("a call appeared or changed after Stop"):
        store = SQLiteStore(server.db_path)
        try:  # nothing straggled in after Stop: still one call, ended
            after = [(c.id, c.status) for c in store.list_calls(limit=10)]
        finally:
            store.close()
        assert after == [(call.id, "ended")], f"calls after Stop and a reload: {after}"

    # 7. Transcript accuracy over the first pass of the file.
    hypothesis = " ".join(x["text"] for x in first_pass)
    reference = " ".join(SENTENCES)
    measured_wer = wer([reference], [hypothesis])

    # 8. Latency: speech end (file position + origin) → line on the page.
    per_sentence: list[dict[str, Any]] = []
    assigned: dict[int, list[dict[str, Any]]] = {}
    for line in first_pass:
        i = _match_sentence(line["text"])
        if i is not None:
            assigned.setdefault(i, []).append(line)
    seg_by_text = {s.text: s for s in segments}
    for i, (start_ms, end_ms, sentence) in enumerate(spans):
        matched = assigned.get(i, [])
        entry: dict[str, Any] = {
            "sentence": sentence,
            "speech_start_in_file_ms": round(start_ms, 1),
            "speech_end_in_file_ms": round(end_ms, 1),
            "lines": [x["text"] for x in matched],
        }
        next_start = spans[i + 1][0] if i + 1 < len(spans) else float("inf")
        seen = [p for p in partials if origin_ms + start_ms <= p["at"] < origin_ms + next_start]
        if seen:
            entry["speech_start_to_first_partial_ms"] = round(seen[0]["at"] - (origin_ms + start_ms), 1)
        if matched:
            shown = matched[-1]
            entry["speech_end_to_page_ms"] = round(shown["at"] - (origin_ms + end_ms), 1)
            seg = seg_by_text.get(shown["text"])
            timing = timings.get(seg.id) if seg is not None else None
            if timing is not None:
                entry["server_speech_end_to_final_ms"] = round(timing.speech_end_to_final_ms, 1)
        per_sentence.append(entry)
    latencies = [e["speech_end_to_page_ms"] for e in per_sentence if "speech_end_to_page_ms" in e]
    server_lat = [
        e["server_speech_end_to_final_ms"] for e in per_sentence if "server_speech_end_to_final_ms" in e
    ]
    first_partial = [
        e["speech_start_to_first_partial_ms"] for e in per_sentence if "speech_start_to_first_partial_ms" in e
    ]
    regions = capture.get("regions") or []
    region_ends = [r[1] for r in regions if r[1] is not None]
    alignment = [
        round(r_end - (origin_ms + span[1]), 1) for r_end, span in zip(region_ends, spans, strict=False)
    ]
    report = {
        "wer": round(measured_wer, 4),
        "reference": reference,
        "hypothesis": hypothesis,
        "sentences": len(SENTENCES),
        "lines_on_page": len(final_lines),
        "latency_ms": {
            "p50": round(_percentile(latencies, 50), 1),
            "p95": round(_percentile(latencies, 95), 1),
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
            "n": len(latencies),
        },
        "server_speech_end_to_final_ms": {
            "p50": round(_percentile(server_lat, 50), 1),
            "p95": round(_percentile(server_lat, 95), 1),
            "n": len(server_lat),
        },
        "speech_start_to_first_partial_ms": {
            "p50": round(_percentile(first_partial, 50), 1),
            "n": len(first_partial),
            "partials_seen": len(partials),
        },
        "per_sentence": per_sentence,
        "method": {
            "speech_end": "capture origin + end of the sentence's voiced span in the WAV",
            "capture_origin": origin_method,
            "origin_minus_getusermedia_resolve_ms": round(origin_ms - capture["gumResolvedAt"], 1),
            "browser_seen_speech_end_minus_predicted_ms": alignment,
            "text_on_page": "first time the div.vc-line is in the DOM (MutationObserver + 50 ms poll)",
            "first_partial": "first new div.vc-partial text after the sentence's speech start",
            "ui_poll_interval_s": 0.3,
            "clock": "browser Date.now() for both ends (same machine clock)",
        },
        "call_id": call.id,
        "test_duration_s": round(time.monotonic() - t_test, 1),
    }
    out = artifacts_dir / "live_latency.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n=== live browser e2e ===")
    print(f"WER {measured_wer:.3f} (max {MAX_WER})")
    print(f"reference : {reference}")
    print(f"hypothesis: {hypothesis}")
    print(
        f"speech end → text on page: p50 {report['latency_ms']['p50']} ms, "
        f"p95 {report['latency_ms']['p95']} ms (n={len(latencies)}; {origin_method}); "
        f"server speech end → final p50 {report['server_speech_end_to_final_ms']['p50']} ms"
    )
    for e in per_sentence:
        print(f"  {e.get('speech_end_to_page_ms', '—'):>8} ms  {e['sentence']!r} → {e['lines']}")
    print(f"written to {out}")

    assert measured_wer <= MAX_WER, (
        f"WER {measured_wer:.3f} > {MAX_WER}\n  reference:  {reference}\n  hypothesis: {hypothesis}\n"
        f"{diag.text()}"
    )
    assert len(latencies) >= len(SENTENCES) - 1, f"too few sentences matched a line: {per_sentence}"
    assert partials, "no partial hypothesis (div.vc-partial) was ever shown while the caller spoke"
    assert time.monotonic() - t_test < TEST_BUDGET_S
