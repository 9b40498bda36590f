"""The Talk page in a real browser: a spoken conversation with the agent, both ways.

Chromium's fake microphone plays a WAV: silence while the agent greets, then one caller
question, then silence. The test opens Talk, presses Start and checks, from the
browser's side, that the agent's voice actually arrives:

* the peer connection's ``getStats()`` shows inbound audio RTP (packets, samples,
  concealment);
* the remote track is recorded as PCM in the widget's iframe (Web Audio
  ``ScriptProcessorNode``), saved as ``test-artifacts/e2e/talk_agent_audio.wav`` and
  transcribed with the app's own recogniser (Moonshine); against the text the agent spoke
  its WER must be at most MAX_ANSWER_WER: the answer is in that audio, intelligibly, not
  only on the page;
* the page shows the greeting, the caller's question and the agent's answer, and the
  store has the turn with its per-stage timings.

Runs in a loopback-only network namespace (see conftest.py): ``pytest tests/e2e``.

Browser voice-to-voice (reported, not asserted): the caller's speech end is placed on the
browser clock as in the Live test (capture origin from the first speech onset a Web
Audio analyser sees on the captured track, plus the end of the question's voiced span in
the WAV). The agent's answer start is the first sample above -40 dBFS in the received
stream after that moment; a received sample's wall time is the time its 1024-sample
block was delivered to the ScriptProcessor minus its position in the block (lower
envelope over nearby blocks, so scheduling jitter does not add to the figure). It spans
WebRTC both ways, end-of-utterance silence, decoding, reply, TTS, the jitter buffer and
the browser's audio graph: what a caller would hear.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import PROJECT_ROOT, chromium_page
from .test_live_browser import (
    CAPTURE_PROBE_JS,
    LINE_WATCH_JS,
    ONSET_THRESHOLD,
    WEBRTC_IFRAME,
    Diagnostics,
    _active_call,
    _wait,
)

pytestmark = pytest.mark.e2e

# The caller's question, in the Piper voice; its top search hit is the duplicate-charge
# article, so the answer is known to come from it. The line the caller gets on the page may
# differ from it by at most MAX_QUESTION_WER (one word in eight).
QUESTION = "why was i charged twice for the same purchase"
ARTICLE_ID = "payment-duplicate-charge"
MAX_QUESTION_WER = 0.15
# The agent's answer as the browser received it, transcribed by the product's recogniser,
# against the text the agent spoke.
MAX_ANSWER_WER = 0.10

LEAD_S = 8.0       # the greeting (~4 s) plays first; the caller waits for it to finish (with
                   # margin: under CPU load the greeting reaches the browser ~1.5 s late)
TRAIL_S = 60.0     # Chromium loops the file; the test is done long before the second pass
RATE = 16_000

PAGE_READY_TIMEOUT_MS = 60_000    # first page load builds the speech models
CONNECT_TIMEOUT_S = 20.0
CALL_START_TIMEOUT_S = 10.0       # connected → first caller audio frame opens the call
ANSWER_TIMEOUT_S = 25.0           # caller speech end → answer line and answer audio
SILENCE_AFTER_ANSWER_S = 1.0      # received stream quiet this long → the answer has played
STOP_TIMEOUT_MS = 30_000
COPILOT_TIMEOUT_MS = 30_000       # the copilot page polls the store every second
TEST_BUDGET_S = 110.0             # the whole test stays under 2 minutes
MAX_CONCEALED_RATIO = 0.20        # share of the answer's samples the jitter buffer invented (a loaded
                                  # 2-core box reaches ~7%; clean audio is ~0-3%)
REGION_GAP_MS = 600.0             # silence that separates two utterances in received audio

# Runs in every frame before its scripts: hook RTCPeerConnection, record the latest
# connection's remote audio track as PCM (with the wall time each block arrived) and sample
# its getStats().
RECEIVE_PROBE_JS = """
(() => {
  if (typeof window.RTCPeerConnection !== 'function' || window.__vcRtc) return;
  const TH = %(threshold)f, GAP_MS = %(gap_ms)f;
  const rtc = {pcs: 0, trackAt: null, sampleRate: null, ctxState: null, total: 0,
               chunks: [], stamps: [], loudAt: null, lastLoudAt: null, regions: [], stats: [],
               last: null, errors: []};
  window.__vcRtc = rtc;
  const Orig = window.RTCPeerConnection;
  let current = null;  // the latest connection's recorder: a new Start starts afresh
  function Hooked(...args) {
    const pc = new Orig(...args);
    rtc.pcs += 1;
    pc.addEventListener('track', (ev) => {
      if (ev.track.kind !== 'audio') return;
      try { record(pc, ev.track); } catch (e) { rtc.errors.push('record: ' + e); }
    });
    return pc;
  }
  Hooked.prototype = Orig.prototype;
  Object.setPrototypeOf(Hooked, Orig);
  window.RTCPeerConnection = Hooked;

  function record(pc, track) {
    if (current) { clearInterval(current.timer); current.ctx.close(); }
    Object.assign(rtc, {trackAt: Date.now(), total: 0, chunks: [], stamps: [], loudAt: null,
                        lastLoudAt: null, regions: [], stats: [], last: null});
    const ctx = new AudioContext({sampleRate: 48000});  // the Opus track's rate
    rtc.sampleRate = ctx.sampleRate;
    const src = ctx.createMediaStreamSource(new MediaStream([track]));
    const proc = ctx.createScriptProcessor(1024, 1, 1);
    const mute = ctx.createGain();
    mute.gain.value = 0;  // the <audio> element plays it; this branch only listens
    src.connect(proc); proc.connect(mute); mute.connect(ctx.destination);
    const me = {ctx, nodes: [src, proc, mute], timer: null};  // a collected node stops processing
    current = me;
    proc.onaudioprocess = (e) => {
      if (current !== me) return;
      const now = Date.now();
      const x = e.inputBuffer.getChannelData(0), n = x.length;
      const pcm = new Int16Array(n);
      let first = -1, loud = -1;
      for (let i = 0; i < n; i++) {
        const v = x[i];
        pcm[i] = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
        if (v > TH || v < -TH) { loud = i; if (first < 0) first = i; }
      }
      if (loud >= 0) {
        // sounding stretches by sample index (immune to callback delivery jitter)
        const a = rtc.total + first, b = rtc.total + loud, r = rtc.regions[rtc.regions.length - 1];
        if (r && a - r[1] <= GAP_MS * ctx.sampleRate / 1000) r[1] = b; else rtc.regions.push([a, b]);
        if (rtc.loudAt === null) rtc.loudAt = now;
        rtc.lastLoudAt = now;
      }
      rtc.chunks.push(pcm);
      rtc.stamps.push([now, rtc.total]);
      rtc.total += n;
    };
    ctx.resume().then(() => { rtc.ctxState = ctx.state; }, (e) => rtc.errors.push('resume: ' + e));
    rtc.ctxState = ctx.state;
    me.timer = setInterval(() => poll(pc, me), 500);
  }

  async function poll(pc, me) {
    let report;
    try { report = await pc.getStats(); } catch (e) { return; }
    if (current !== me) return;
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp' || (s.kind || s.mediaType) !== 'audio') return;
      rtc.last = {at: Date.now(), packetsReceived: s.packetsReceived, packetsLost: s.packetsLost,
                  totalSamplesReceived: s.totalSamplesReceived, concealedSamples: s.concealedSamples,
                  silentConcealedSamples: s.silentConcealedSamples, jitter: s.jitter,
                  jitterBufferDelay: s.jitterBufferDelay,
                  jitterBufferEmittedCount: s.jitterBufferEmittedCount,
                  totalAudioEnergy: s.totalAudioEnergy, audioLevel: s.audioLevel,
                  codecId: s.codecId};
      rtc.stats.push(rtc.last);
    });
  }

  rtc.status = () => ({pcs: rtc.pcs, trackAt: rtc.trackAt, sampleRate: rtc.sampleRate,
                       ctxState: rtc.ctxState, total: rtc.total, loudAt: rtc.loudAt,
                       lastLoudAt: rtc.lastLoudAt, regions: rtc.regions, last: rtc.last,
                       errors: rtc.errors});
  rtc.dump = () => {
    const all = new Int16Array(rtc.total);
    let off = 0;
    for (const c of rtc.chunks) { all.set(c, off); off += c.length; }
    const bytes = new Uint8Array(all.buffer);
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000)
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return {sampleRate: rtc.sampleRate, total: rtc.total, stamps: rtc.stamps,
            stats: rtc.stats, pcm: btoa(bin)};
  };
})();
"""


# --- helpers -------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    from core.language.text import words

    return list(words(text))


def _store_state(db_path: Path) -> tuple[Any, list[Any], list[Any]]:
    """(latest call, its segments, its turns) from the server's store."""
    from core.store.sqlite import SQLiteStore

    if not db_path.exists():
        return None, [], []
    store = SQLiteStore(db_path)
    try:
        calls = store.list_calls(limit=5)
        if not calls:
            return None, [], []
        call = calls[0]
        return call, store.segments(call.id), store.turns(call.id)
    finally:
        store.close()


def _regions(pcm: np.ndarray, rate: int, threshold: float, gap_ms: float) -> list[tuple[int, int]]:
    """(first, last) sample index of each stretch of sound separated by ``gap_ms`` of quiet."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold * 32767)
    if loud.size == 0:
        return []
    gap = int(gap_ms * rate / 1000)
    breaks = np.flatnonzero(np.diff(loud) > gap)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]])
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


class SampleClock:
    """Wall time (browser ms) of a received sample, from the block delivery stamps."""

    def __init__(self, stamps: list[list[float]], rate: int, block: int = 1024):
        self.rate = rate
        # wall time of sample 0 implied by each block (delivery time minus block end)
        self.idx = np.array([s[1] for s in stamps], dtype=float)
        self.zero = np.array([s[0] - (s[1] + block) * 1000.0 / rate for s in stamps], dtype=float)

    def _zero_near(self, sample: float, window_s: float = 3.0) -> float:
        near = np.abs(self.idx - sample) <= window_s * self.rate
        return float(self.zero[near].min() if near.any() else self.zero.min())

    def wall(self, sample: int) -> float:
        return self._zero_near(sample) + sample * 1000.0 / self.rate

    def sample_at(self, wall_ms: float) -> int:
        guess = (wall_ms - float(self.zero.min())) * self.rate / 1000.0
        for _ in range(3):  # refine with the envelope around the guess
            guess = (wall_ms - self._zero_near(guess)) * self.rate / 1000.0
        return int(round(guess))


def _transcribe(engine: Any, pcm16k: np.ndarray) -> str:
    stream = engine.open()
    stream.accept(pcm16k)
    return stream.finish().text


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


class TalkDiagnostics(Diagnostics):
    """The Live test's diagnostics with the receive probe's state; screenshot as talk_failure.png."""

    widget: Any = None
    copilot: Any = None  # the Live copilot page in a second browser context

    def text(self) -> str:
        parts: list[str] = []
        if self.copilot is not None:
            try:
                self.copilot.screenshot(path=str(self.artifacts / "talk_copilot_failure.png"), full_page=True)
                parts.append("--- copilot page text ---\n" + self.copilot.inner_text("body", timeout=3000)[-3000:])
            except Exception as exc:  # noqa: BLE001 - diagnostics must not raise
                parts.append(f"(copilot page unavailable: {exc})")
        if self.page is not None:
            try:
                self.page.screenshot(path=str(self.artifacts / "talk_failure.png"), full_page=True)
            except Exception as exc:  # noqa: BLE001 - diagnostics must not raise
                parts.append(f"(no failure screenshot: {exc})")
            try:
                parts.append("--- page visible text ---\n" + self.page.inner_text("body", timeout=3000)[-4000:])
            except Exception as exc:  # noqa: BLE001
                parts.append(f"(page text unavailable: {exc})")
        if self.widget is not None:
            try:
                parts.append("--- webrtc widget text ---\n" + self.widget.inner_text("body", timeout=2000))
                status = self.widget.evaluate("() => window.__vcRtc ? window.__vcRtc.status() : null")
                parts.append(f"--- receive probe ---\n{json.dumps(status)[:2000]}")
            except Exception as exc:  # noqa: BLE001
                parts.append(f"(widget state unavailable: {exc})")
        if self.console:
            parts.append("--- browser console (last 30) ---\n" + "\n".join(self.console[-30:]))
        parts.append("--- streamlit server log (tail) ---\n" + self.server.log_tail(80))
        return "\n".join(parts)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def caller_wav(tmp_path: Path, artifacts_dir: Path) -> tuple[Path, tuple[float, float], float]:
    """The caller's microphone: WAV path, the question's voiced span (ms in the file), duration (ms)."""
    from core.speech.tts.espeak import script_audio, write_wav
    from core.speech.tts.piper import speak_16k

    audio, spans = script_audio([QUESTION], gap_s=0.0, lead_s=LEAD_S, speak=speak_16k)
    audio = np.concatenate([audio, np.zeros(int(TRAIL_S * RATE), np.int16)])
    path = tmp_path / "talk_caller.wav"
    write_wav(str(path), audio, RATE)
    shutil.copyfile(path, artifacts_dir / "talk_caller.wav")
    return path, (spans[0][0], spans[0][1]), audio.size * 1000.0 / RATE


@pytest.fixture
def talk_page(caller_wav, streamlit_server, artifacts_dir: Path):  # type: ignore[no-untyped-def]
    wav, _, _ = caller_wav
    (artifacts_dir / "talk_failure.png").unlink(missing_ok=True)  # from an earlier run
    diag = TalkDiagnostics(streamlit_server, artifacts_dir)
    scripts = [
        CAPTURE_PROBE_JS % {"threshold": ONSET_THRESHOLD},
        RECEIVE_PROBE_JS % {"threshold": ONSET_THRESHOLD, "gap_ms": REGION_GAP_MS},
    ]
    with chromium_page(wav, streamlit_server.url, scripts) as page:
        diag.attach(page)
        yield page, diag


def _app_stt(data_dir: Path) -> Any:
    """The app's own recogniser as the server builds it (Moonshine with the bank pack's
    vocabulary, pocketsphinx behind it), in-process, from the server's data dir."""
    from core.config import Settings
    from core.kb.pack import load_pack
    from core.providers.speech import build_stt

    settings = Settings(data_dir=data_dir, cache_dir=PROJECT_ROOT / "data" / "test-cache" / "cache")
    return build_stt(settings, load_pack(settings.pack_dir))


# --- the test ------------------------------------------------------------------------------


def test_talk_page_agent_answers_out_loud(  # noqa: PLR0915 - one scenario, step by step
    talk_page, caller_wav, streamlit_server, artifacts_dir: Path
) -> None:
    from core.language.text import wer
    from core.speech.audio import resample

    t_test = time.monotonic()
    page, diag = talk_page
    _, (q_start_ms, q_end_ms), _ = caller_wav
    server = streamlit_server

    # 1. Open the app and go to Talk from the sidebar, as a user does (the first run builds
    #    the speech models). Opening /talk directly is test_pages_browser.py's business.
    page.goto(server.url, wait_until="domcontentloaded")
    with diag.step("the app did not show Talk in the sidebar navigation"):
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_text("Talk", exact=True).wait_for(timeout=PAGE_READY_TIMEOUT_MS)
        nav.get_by_text("Talk", exact=True).click()
        page.wait_for_url(re.compile(r"/talk/?$"), timeout=15_000)
    with diag.step("the Talk page did not become ready"):
        page.get_by_text("The agent greets you first").first.wait_for(timeout=PAGE_READY_TIMEOUT_MS)
        start = page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Start")
        start.wait_for(timeout=15_000)
    page.evaluate(LINE_WATCH_JS)
    page.screenshot(path=str(artifacts_dir / "talk_01_ready.png"), full_page=True)

    # 2. Start: the microphone opens, WebRTC connects both ways, the call starts.
    widget = page.locator(WEBRTC_IFRAME).element_handle().content_frame()
    assert widget is not None, "the webrtc iframe has no frame"
    diag.widget = widget
    assert widget.evaluate("() => !!window.__vcRtc"), "the receive probe is not in the widget's iframe"
    start_attempts: list[dict[str, Any]] = []
    for attempt in (1, 2):
        calls_before = widget.evaluate("() => window.__vcCapture ? window.__vcCapture.calls : 0")
        start.click()
        capture = _wait(
            lambda n=calls_before: widget.evaluate(
                "(n) => { const c = window.__vcCapture; return c && c.calls > n && c.gumResolvedAt"
                " >= c.gumCalledAt ? c : null; }", n),
            CONNECT_TIMEOUT_S,
        )
        if not capture:
            diag.fail("getUserMedia never resolved in the webrtc widget after Start")
        with diag.step("the widget did not switch to Stop after Start"):
            page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Stop").wait_for(
                timeout=CONNECT_TIMEOUT_S * 1000
            )
        with diag.step("the browser never got the agent's audio track"):
            assert _wait(lambda: widget.evaluate("() => window.__vcRtc.trackAt"), CONNECT_TIMEOUT_S), (
                "no remote audio track arrived on the peer connection (SENDRECV expected)"
            )
        # The first audio frame on the server opens the call (and the agent greets).
        call_id = _wait(lambda: _active_call(server.db_path), CALL_START_TIMEOUT_S, 0.2)
        if call_id:
            start_attempts.append({"attempt": attempt, "call_id": call_id})
            break
        dropped = page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Start").is_visible()
        start_attempts.append({
            "attempt": attempt,
            "outcome": "no call started on the server" + ("; the widget went back to Start" if dropped else ""),
            "probe": widget.evaluate("() => window.__vcRtc.status()"),
            "console_tail": diag.console[-8:],
        })
        page.screenshot(path=str(artifacts_dir / f"talk_start_attempt{attempt}_failed.png"), full_page=True)
        print(f"WARNING: Start attempt {attempt} failed: {start_attempts[-1]}")
        if attempt == 2 or not dropped:
            diag.fail(f"no call started on the server after Start: {start_attempts}")
        start.wait_for(timeout=10_000)  # the widget is back at Start: a user would press it again

    # 3. The greeting plays while the caller waits; then the question (the WAV's only speech).
    with diag.step("the greeting never reached the browser"):
        assert _wait(lambda: widget.evaluate("() => window.__vcRtc.loudAt"), LEAD_S + 5.0), (
            "no sound in the received stream while the agent should be greeting"
        )
    page.screenshot(path=str(artifacts_dir / "talk_02_greeting.png"), full_page=True)
    onset_at = _wait(lambda: widget.evaluate("() => window.__vcCapture.onsetAt"), LEAD_S + 8.0)
    capture = widget.evaluate("() => window.__vcCapture")
    if onset_at:
        origin_ms = float(onset_at) - q_start_ms
        origin_method = "first speech onset seen by a Web Audio analyser on the captured track"
    else:
        origin_ms = float(capture["gumResolvedAt"])
        origin_method = "getUserMedia resolve time (no onset detected)"
    q_end_wall = origin_ms + q_end_ms

    # 4. The answer: a caller line, then an agent line on the page, the turn in the store,
    #    and the answer's sound in the received stream, played to its end.
    def lines() -> list[dict[str, Any]]:
        return list(page.evaluate("() => window.__vcLines || []"))

    q_end: dict[str, int] = {}  # the caller's speech end as a sample index of the received stream

    def answered() -> bool:
        """Answer line on the page, turn stored, and the answer's audio received to its end.

        Judged by sample counts of the received stream (not callback times), so a late
        greeting tail under load cannot pass for the answer.
        """
        got = lines()
        callers = [i for i, x in enumerate(got) if x["speaker"] == "caller"]
        if not callers or not any(x["speaker"] == "agent" for x in got[callers[0] + 1:]):
            return False
        _, segments, turns = _store_state(server.db_path)
        agent = [x for x in segments if turns and x.id == turns[0].agent_segment_id]
        if not agent:
            return False
        answer_ms = agent[0].t_end_ms - agent[0].t_start_ms
        if "sample" not in q_end:
            stamps = widget.evaluate("() => window.__vcRtc.stamps")
            if not stamps or stamps[-1][0] < q_end_wall:
                return False
            q_end["sample"] = SampleClock(stamps, rate).sample_at(q_end_wall)
        status = widget.evaluate("() => window.__vcRtc.status()")
        after = [r for r in status["regions"] if r[0] > q_end["sample"]]
        if not after:
            return False
        heard_ms = (after[-1][1] - after[0][0]) * 1000.0 / rate
        quiet_ms = (status["total"] - after[-1][1]) * 1000.0 / rate
        return heard_ms >= 0.8 * answer_ms and quiet_ms >= SILENCE_AFTER_ANSWER_S * 1000

    rate = int(widget.evaluate("() => window.__vcRtc.sampleRate"))
    with diag.step("the agent's answer did not arrive (page, store and received audio)"):
        remaining = max(5.0, TEST_BUDGET_S - 25.0 - (time.monotonic() - t_test))
        assert _wait(answered, min(LEAD_S + 6.0 + ANSWER_TIMEOUT_S, remaining), 0.25), (
            f"within {ANSWER_TIMEOUT_S:.0f} s of the question: lines {lines()}, "
            f"turns {_store_state(server.db_path)[2]}, "
            f"probe {widget.evaluate('() => window.__vcRtc.status()')}"
        )
    page.screenshot(path=str(artifacts_dir / "talk_03_answered.png"), full_page=True)
    with diag.step("the turn table did not show"):
        page.get_by_text("Where the time went").first.wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts_dir / "talk_04_metrics.png"), full_page=True)
    page_lines = lines()
    rtc = widget.evaluate("() => window.__vcRtc.dump()")

    # 4b. Another browser (its own context: no shared cookies or session) opens the Live
    #     copilot page: without being told the call id, it follows this Talk call.
    copilot_ctx = page.context.browser.new_context(viewport={"width": 1280, "height": 1000})
    copilot = copilot_ctx.new_page()
    copilot.set_default_timeout(15_000)
    diag.copilot = copilot
    copilot.goto(server.url, wait_until="domcontentloaded")
    with diag.step("the Live copilot page in another browser did not pick up the Talk call"):
        nav = copilot.get_by_test_id("stSidebarNav")
        nav.get_by_text("Live copilot", exact=True).wait_for(timeout=PAGE_READY_TIMEOUT_MS)
        for attempt in range(3):  # a click before the app's session is up is dropped: retry
            nav.get_by_text("Live copilot", exact=True).click()
            try:
                copilot.wait_for_url(re.compile(r"/copilot/?$"), timeout=10_000)
                # the URL can change while the first run still renders the default page
                copilot.get_by_role("heading", name="Live copilot").wait_for(timeout=10_000)
                break
            except Exception:  # noqa: BLE001 - retried, then the waits below report it
                if attempt == 2:
                    raise
        copilot.get_by_text(f"Call `{call_id}`".replace("`", "")).first.wait_for(timeout=COPILOT_TIMEOUT_MS)
        heard_question = next((x["text"] for x in page_lines if x["speaker"] == "caller"), QUESTION)
        copilot.get_by_text(heard_question, exact=False).first.wait_for(timeout=COPILOT_TIMEOUT_MS)
        copilot.get_by_text(f"Call {call_id} · talk · live").first.wait_for(timeout=COPILOT_TIMEOUT_MS)
    copilot.screenshot(path=str(artifacts_dir / "talk_06_copilot_live.png"), full_page=True)

    # 5. Stop: the call ends and the page says so.
    page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Stop").click()
    with diag.step("after Stop the page never showed the call as ended"):
        page.get_by_text("ended.").first.wait_for(timeout=STOP_TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "talk_05_stopped.png"), full_page=True)
    with diag.step("the copilot page did not propose a disposition when the call ended"):
        copilot.get_by_text("Wrap-up", exact=True).first.wait_for(timeout=COPILOT_TIMEOUT_MS)
        copilot.get_by_text("Proposed:", exact=False).first.wait_for(timeout=COPILOT_TIMEOUT_MS)
    copilot.screenshot(path=str(artifacts_dir / "talk_07_copilot_wrapup.png"), full_page=True)
    copilot_ctx.close()
    with diag.step("the stored call is not what the page showed"):
        assert _wait(lambda: (_store_state(server.db_path)[0] or None) and
                     _store_state(server.db_path)[0].status != "active", 10.0), "the call is still active"
        call, segments, turns = _store_state(server.db_path)
        assert call.status == "ended", f"call {call.id} is {call.status!r} after Stop ({call.error})"

    # 6. What the browser received: RTP stats and the recorded PCM.
    assert int(rtc["sampleRate"]) == rate
    pcm = np.frombuffer(base64.b64decode(rtc["pcm"]), dtype="<i2").astype(np.int16)
    _write_wav(artifacts_dir / "talk_agent_audio.wav", pcm, rate)
    stats = rtc["stats"]
    last = stats[-1] if stats else {}
    clock = SampleClock(rtc["stamps"], rate)
    regions = _regions(pcm, rate, ONSET_THRESHOLD, REGION_GAP_MS)
    region_info = [
        {"start_wall_ms": round(clock.wall(a), 1), "end_wall_ms": round(clock.wall(b), 1),
         "duration_ms": round((b - a) * 1000.0 / rate, 1)}
        for a, b in regions
    ]
    q_end_sample = clock.sample_at(q_end_wall)
    greeting_regions = [r for r in regions if r[1] < q_end_sample]
    answer_regions = [r for r in regions if r[0] > q_end_sample]

    def concealment(t0: float, t1: float) -> dict[str, Any] | None:
        """Received and concealed samples between two wall times (from the 0.5 s stats polls)."""
        before = [x for x in stats if x["at"] <= t0]
        after = [x for x in stats if x["at"] >= t1]
        if not before or not after:
            return None
        a, b = before[-1], after[0]
        got = b["totalSamplesReceived"] - a["totalSamplesReceived"]
        hid = b["concealedSamples"] - a["concealedSamples"]
        emitted = (b.get("jitterBufferEmittedCount") or 0) - (a.get("jitterBufferEmittedCount") or 0)
        delay_s = (b.get("jitterBufferDelay") or 0.0) - (a.get("jitterBufferDelay") or 0.0)
        return {"samples": got, "concealed": hid, "ratio": round(hid / got, 4) if got else None,
                "mean_jitter_buffer_delay_ms": round(delay_s / emitted * 1000.0, 1) if emitted else None}

    stamps = rtc["stamps"]
    recording = {
        "wall_span_s": round((stamps[-1][0] - stamps[0][0]) / 1000.0, 2) if stamps else 0.0,
        "audio_span_s": round((stamps[-1][1] - stamps[0][1]) / rate, 2) if stamps else 0.0,
    }
    t0 = stats[0]["at"] if stats else 0
    timeline = [
        [round((x["at"] - t0) / 1000.0, 2), x["packetsReceived"], x["totalSamplesReceived"],
         x["concealedSamples"], x.get("silentConcealedSamples"),
         round(1000.0 * (x.get("jitterBufferDelay") or 0.0) / max(1, x.get("jitterBufferEmittedCount") or 0), 1)]
        for x in stats
    ]

    # 7. Transcribe the received audio with the app's own recogniser, one stretch of sound
    #    (between pauses of REGION_GAP_MS) at a time, as the recogniser takes utterances.
    def heard(parts: list[tuple[int, int]], engine: Any) -> str:
        pad = int(0.3 * rate)
        return " ".join(
            _transcribe(engine, resample(pcm[max(0, a - pad): b + pad], rate, 16_000)) for a, b in parts
        ).strip()

    answer_span = (answer_regions[0][0], answer_regions[-1][1]) if answer_regions else None
    greeting_span = (greeting_regions[0][0], greeting_regions[-1][1]) if greeting_regions else None
    answer_stt = _app_stt(server.data_dir)
    answer_heard = heard(answer_regions, answer_stt)
    greeting_heard = heard(greeting_regions, answer_stt)

    # 8. Figures: the stored turn and the browser's voice-to-voice.
    caller_segs = [s for s in segments if s.speaker == "caller"]
    agent_segs = [s for s in segments if s.speaker == "agent"]
    turn = turns[0] if turns else None
    reply_text = turn.agent_text if turn is not None else ""
    answer_wer = wer([reply_text], [answer_heard]) if reply_text else None
    browser_v2v = clock.wall(answer_regions[0][0]) - q_end_wall if answer_regions else None
    greeting_end_wall = clock.wall(greeting_regions[-1][1]) if greeting_regions else None

    def r1(x: float | None) -> float | None:
        return None if x is None else round(float(x), 1)

    report = {
        "question": QUESTION,
        "call_id": call.id,
        "start_attempts": start_attempts,
        "page_lines": [{"speaker": x["speaker"], "text": x["text"]} for x in page_lines],
        "stored_segments": [{"speaker": s.speaker, "text": s.text, "t_start_ms": r1(s.t_start_ms),
                             "t_end_ms": r1(s.t_end_ms)} for s in segments],
        "turn": None if turn is None else {
            "turn_index": turn.turn_index,
            "caller_text": turn.caller_text,
            "agent_text": turn.agent_text,
            "endpoint_ms": r1(turn.endpoint_ms),
            "stt_ms": r1(turn.stt_ms),
            "reply_first_token_ms": r1(turn.reply_first_token_ms),
            "tts_first_audio_ms": r1(turn.tts_first_audio_ms),
            "voice_to_voice_ms": r1(turn.voice_to_voice_ms),
            "interrupted": turn.interrupted,
        },
        "browser": {
            "voice_to_voice_ms": r1(browser_v2v),
            "caller_speech_end_wall_ms": r1(q_end_wall),
            "answer_audio_start_wall_ms": r1(clock.wall(answer_regions[0][0])) if answer_regions else None,
            "greeting_end_to_caller_speech_start_ms": r1(origin_ms + q_start_ms - greeting_end_wall)
            if greeting_end_wall is not None else None,
            "received_regions": region_info,
        },
        "received_answer_transcript": answer_heard,
        "received_answer_wer": answer_wer,
        "received_greeting_transcript": greeting_heard,
        "inbound_rtp": last,
        "concealment": {
            "whole_call": concealment(stats[0]["at"], stats[-1]["at"]) if stats else None,
            "during_greeting": concealment(clock.wall(greeting_span[0]), clock.wall(greeting_span[1]))
            if greeting_span else None,
            "during_answer": concealment(clock.wall(answer_span[0]), clock.wall(answer_span[1]))
            if answer_span else None,
        },
        "inbound_rtp_timeline": {
            "columns": ["t_s", "packetsReceived", "totalSamplesReceived", "concealedSamples",
                        "silentConcealedSamples", "mean_jitter_buffer_delay_ms_so_far"],
            "rows": timeline,
        },
        "recording": recording,
        "received_audio": {"sample_rate": rate, "samples": int(pcm.size),
                           "seconds": round(pcm.size / rate, 2),
                           "wav": str(artifacts_dir / "talk_agent_audio.wav")},
        "method": {
            "caller_speech_end": "capture origin + end of the question's voiced span in the WAV",
            "capture_origin": origin_method,
            "origin_minus_getusermedia_resolve_ms": r1(origin_ms - capture["gumResolvedAt"]),
            "answer_audio_start": "first received sample above -40 dBFS after the caller's speech end "
                                  "(ScriptProcessor block delivery time, lower envelope)",
            "clock": "browser Date.now() for both ends (same machine clock)",
            "transcript_engine": "the app's recogniser (Moonshine with the bank pack's vocabulary), per stretch of sound",
        },
        "test_duration_s": round(time.monotonic() - t_test, 1),
    }
    out = artifacts_dir / "talk_latency.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n=== talk browser e2e ===")
    print(f"page: {[(x['speaker'], x['text']) for x in page_lines]}")
    print(f"reply (store): {reply_text!r}")
    print(f"heard in received audio: {answer_heard!r} (WER {answer_wer})")
    print(f"greeting heard as: {greeting_heard!r}")
    print(f"browser voice-to-voice {r1(browser_v2v)} ms; stored turn {report['turn']}")
    print(f"inbound-rtp: {last}")
    print(f"concealment: {report['concealment']}; recording {recording}")
    print(f"written to {out}")

    # 9. Assertions.
    with diag.step("the page did not show the conversation"):
        speakers = [x["speaker"] for x in page_lines]
        assert speakers[:1] == ["agent"], f"the agent should speak first: {page_lines}"
        first_caller = speakers.index("caller")
        assert "agent" in speakers[first_caller + 1:], f"no agent line after the caller's: {page_lines}"
        greeting = page_lines[0]["text"]
        persona_greeting = "Hi, this is Nora from Northwind Bank. How can I help you today?"
        assert _words(greeting) == _words(persona_greeting), f"greeting on the page: {greeting!r}"
        caller_text = page_lines[first_caller]["text"]
        assert wer([QUESTION], [caller_text]) <= MAX_QUESTION_WER, f"caller line {caller_text!r} != {QUESTION!r}"
    with diag.step("the store does not have the conversation and its turn"):
        assert [s.speaker for s in segments][:3] == ["agent", "caller", "agent"], segments
        assert [s.text for s in caller_segs] == [caller_text], caller_segs
        assert turn is not None and len(turns) == 1, f"turns: {turns}"
        assert turn.caller_text == caller_text
        assert not turn.interrupted, "the answer was marked interrupted"
        assert turn.agent_text == agent_segs[1].text, (turn.agent_text, agent_segs)
        for name in ("endpoint_ms", "stt_ms", "reply_first_token_ms", "tts_first_audio_ms", "voice_to_voice_ms"):
            value = getattr(turn, name)
            assert value is not None and 0 <= value < 10_000, f"{name} = {value}"
        from core.kb.lexical import LexicalIndex
        from core.kb.pack import load_pack

        hits = LexicalIndex.from_pack(load_pack(Path(__file__).resolve().parents[2] / "packs" / "bank")).search(
            caller_text)
        assert hits and hits[0].article_id == ARTICLE_ID, f"{caller_text!r} retrieves {hits[:2]}"
    with diag.step("the browser did not receive the agent's audio over RTP"):
        assert stats, "getStats() never reported inbound audio RTP"
        assert last["packetsReceived"] > 100, last
        assert last["totalSamplesReceived"] > 5 * 48_000, last
        assert greeting_regions, f"no greeting sound before the caller spoke: {region_info}"
        assert answer_regions, f"no sound in the received stream after the caller spoke: {region_info}"
        # Start-up concealment (jitter buffer filling) is normal; the answer must play clean.
        during = report["concealment"]["during_answer"]
        assert during is not None and during["ratio"] is not None, report["concealment"]
        assert during["ratio"] <= MAX_CONCEALED_RATIO, f"answer audio concealed: {report['concealment']}"
        assert abs(recording["wall_span_s"] - recording["audio_span_s"]) < 1.0, (
            f"the recorder lost audio: {recording}"
        )
    with diag.step("the agent's answer is not in the audio the browser received"):
        assert answer_wer is not None and answer_wer <= MAX_ANSWER_WER, (
            f"received audio decodes as {answer_heard!r}: WER {answer_wer} against the reply {reply_text!r}"
        )
    assert browser_v2v is not None and 0 < browser_v2v < ANSWER_TIMEOUT_S * 1000
    assert time.monotonic() - t_test < TEST_BUDGET_S, f"test took {time.monotonic() - t_test:.0f} s"
