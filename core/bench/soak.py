"""Soak: many short browser calls on Live and Talk for a fixed time, through the real app.

``make soak`` (``python -m core.bench.soak [--minutes 5] [--tabs 4] [--call-s 20] [--json OUT]``)

Starts the app on a free port on 127.0.0.1 with its own data folder, then for
``--minutes`` keeps ``--tabs`` Chromium tabs busy: each opens Live or Talk (in turn),
presses Start, lets the fake microphone speak for ``--call-s`` seconds, presses Stop,
closes, and the next call starts. The store says how each call ended. Reported:

* calls started (Start pressed), created (in the store), completed (ended by the
  driver's Stop: status ``ended``), failed (with their reasons);
* **calls that ended for no reason**: ``ended`` though the driver never pressed Stop on
  them, or ``failed`` without an error, or still ``active`` after the run (must be 0);
* the server's memory (RSS) and threads before the calls, at their peak, and after 3 minutes
  idle (closed tabs' sessions are kept 2 minutes for reconnection), and whether they came back to within 10 % / 5 threads of the baseline.

``--ramp 2,4,6`` instead runs one wave per level: that many simultaneous calls held for
``--call-s``, and reports per level whether every call lasted until its Stop (the most
simultaneous browser calls this machine holds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IFRAME = 'iframe[title*="webrtc"]'
IDLE_AFTER_S = 180.0  # Streamlit keeps a closed tab's session 120 s for reconnection
RSS_BACK_WITHIN = 0.10
THREADS_BACK_WITHIN = 5
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The app under ``streamlit run`` on 127.0.0.1, with RSS/thread sampling."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "VC_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
               "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        self.log = (data_dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(self.port), "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.samples: list[dict[str, Any]] = []
        self.phase = "start-up"
        self._stop = threading.Event()

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited during start-up; see {self.data_dir / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        threading.Thread(target=self._sample, daemon=True).start()
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the app did not start in time")

    def status(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
        return {"rss_mb": out.get("VmRSS", 0) // 1024, "threads": out.get("Threads", 0)}

    def _sample(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self.samples.append({**self.status(), "phase": self.phase, "t": time.monotonic()})
            except OSError:
                return

    def thread_names(self) -> dict[str, int]:
        """Threads of the server by name (py-spy, when installed): what is left after calls."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        try:
            out = subprocess.run([spy, "dump", "--pid", str(self.proc.pid)], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        names: dict[str, int] = {}
        for line in out.stdout.splitlines():
            if line.startswith("Thread "):
                name = line.split('"')[1] if '"' in line else "?"
                name = name.rstrip("0123456789_-").rstrip("(") or name
                names[name] = names.get(name, 0) + 1
        return dict(sorted(names.items(), key=lambda kv: -kv[1]))

    def calls(self) -> list[dict[str, Any]]:
        db = self.data_dir / "voice_copilot.sqlite3"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT id, status, error, source, started_at, ended_at FROM calls").fetchall()
        finally:
            con.close()
        return [dict(zip(("id", "status", "error", "source", "started_at", "ended_at"), r, strict=True)) for r in rows]

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.log.close()


async def one_call(browser: Any, url: str, page: str, hold_s: float, log: list[dict[str, Any]]) -> None:
    """Open ``page``, Start, speak for ``hold_s``, Stop; what happened goes to ``log``."""
    entry: dict[str, Any] = {"page": page, "started": False, "stopped": False, "widget_stopped_by_itself": False}
    log.append(entry)
    ctx = await browser.new_context()
    try:
        await ctx.grant_permissions(["microphone"], origin=url)
        tab = await ctx.new_page()
        await tab.goto(url)
        if page == "talk":
            await tab.get_by_role("link", name="Talk").first.click()
        frame = tab.frame_locator(IFRAME)
        await frame.get_by_role("button", name="Start").wait_for(timeout=90_000)
        entry["t_start"] = time.time()
        await frame.get_by_role("button", name="Start").click()
        entry["started"] = True
        await frame.get_by_role("button", name="Stop").wait_for(timeout=30_000)
        until = time.monotonic() + hold_s
        while time.monotonic() < until:
            await asyncio.sleep(1.0)
            if not await frame.get_by_role("button", name="Stop").count():
                entry["widget_stopped_by_itself"] = True
                break
        if not entry["widget_stopped_by_itself"]:
            entry["t_stop"] = time.time()
            await frame.get_by_role("button", name="Stop").click()
            entry["stopped"] = True
            await asyncio.sleep(3.0)  # the call is closed in the store
    except Exception as exc:  # noqa: BLE001 - reported per call
        entry["driver_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        await ctx.close()


def _match(entries: list[dict[str, Any]], calls: list[dict[str, Any]]) -> None:
    """Pair each driver call with the store call that started within 10 s after its Start."""
    free = sorted(calls, key=lambda c: c["started_at"])
    for entry in sorted((e for e in entries if "t_start" in e), key=lambda e: e["t_start"]):
        source = "talk" if entry["page"] == "talk" else "browser"
        for call in free:
            if call["source"] == source and entry["t_start"] - 1 <= call["started_at"] <= entry["t_start"] + 10:
                entry["call"] = call
                free.remove(call)
                break


def judge(entries: list[dict[str, Any]], calls: list[dict[str, Any]]) -> dict[str, Any]:
    _match(entries, calls)
    started = [e for e in entries if e["started"]]
    created = [e for e in started if "call" in e]
    completed = [e for e in created if e["stopped"] and e["call"]["status"] == "ended"]
    failed = [e for e in created if e["call"]["status"] == "failed"]
    no_reason = [
        e for e in created
        if (e["call"]["status"] == "ended" and not e["stopped"])
        or (e["call"]["status"] == "failed" and not e["call"]["error"])
        or e["call"]["status"] == "active"
    ]
    return {
        "calls_started": len(started), "calls_created": len(created), "calls_completed": len(completed),
        "calls_failed": len(failed), "calls_ended_for_no_reason": len(no_reason),
        "failure_reasons": sorted({str(e["call"]["error"]) for e in failed}),
        "start_without_call": len(started) - len(created),
        "driver_errors": sorted({e["driver_error"] for e in entries if "driver_error" in e}),
        "unmatched_store_calls": len(calls) - len(created),
    }


def _resources(server: Server, baseline: dict[str, int]) -> dict[str, Any]:
    during = [s for s in server.samples if s["phase"] == "calls"]
    after = server.status()
    peak_rss = max((s["rss_mb"] for s in during), default=after["rss_mb"])
    peak_threads = max((s["threads"] for s in during), default=after["threads"])
    return {
        "rss_mb": {"before": baseline["rss_mb"], "peak": peak_rss, "after_idle": after["rss_mb"]},
        "threads": {"before": baseline["threads"], "peak": peak_threads, "after_idle": after["threads"]},
        "threads_after_idle_by_name": server.thread_names(),
        "rss_back_to_baseline": after["rss_mb"] <= baseline["rss_mb"] * (1 + RSS_BACK_WITHIN),
        "threads_back_to_baseline": after["threads"] <= baseline["threads"] + THREADS_BACK_WITHIN,
    }


async def _run(args: argparse.Namespace, server: Server, wav: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium, headless=True, args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"]
        )
        warm = await browser.new_context()  # the first page load builds the models: not counted
        tab = await warm.new_page()
        await tab.goto(server.url)
        await tab.frame_locator(IFRAME).get_by_role("button", name="Start").wait_for(timeout=180_000)
        await warm.close()
        await asyncio.sleep(10)
        baseline = server.status()
        server.phase = "calls"
        results: dict[str, Any] = {"baseline": baseline}
        if args.ramp:
            levels = []
            for n in args.ramp:
                entries: list[dict[str, Any]] = []
                pages = ["talk" if i % 2 else "live" for i in range(n)]
                await asyncio.gather(*(one_call(browser, server.url, p, args.call_s, entries) for p in pages))
                outcome = judge(entries, server.calls())
                outcome["simultaneous"] = n
                outcome["all_held"] = outcome["calls_completed"] == n
                levels.append(outcome)
            results["ramp"] = levels
            held = [lv["simultaneous"] for lv in levels if lv["all_held"]]
            results["most_simultaneous_calls_held"] = max(held, default=0)
        else:
            entries = []
            deadline = time.monotonic() + args.minutes * 60

            async def tab_loop(i: int) -> None:
                n = i
                while time.monotonic() < deadline:
                    await one_call(browser, server.url, "talk" if n % 2 else "live", args.call_s, entries)
                    n += 1

            await asyncio.gather(*(tab_loop(i) for i in range(args.tabs)))
            results.update(judge(entries, server.calls()))
        await browser.close()
    server.phase = "idle"
    await asyncio.sleep(IDLE_AFTER_S)
    results.update(_resources(server, baseline))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--tabs", type=int, default=4, help="browser tabs making calls at once")
    parser.add_argument("--call-s", type=float, default=20.0, help="how long each call speaks before Stop")
    parser.add_argument("--ramp", type=lambda s: [int(x) for x in s.split(",") if x.strip()], default=None,
                        help="e.g. 2,4,6: one wave of that many simultaneous calls per level")
    parser.add_argument("--wav", type=Path, help="the fake microphone's speech (default: a pack sentence, Piper voice)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vc-soak-") as tmp:
        data = Path(tmp)
        wav = args.wav or _caller_wav(data / "caller.wav")
        server = Server(data)
        try:
            server.wait_ready()
            results = asyncio.run(_run(args, server, wav))
        finally:
            server.stop()
    results["settings"] = {"minutes": args.minutes, "tabs": args.tabs, "call_s": args.call_s, "ramp": args.ramp}
    print(json.dumps(results, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0 if not results.get("calls_ended_for_no_reason") else 1


def _caller_wav(path: Path) -> Path:
    """A caller speaking with pauses (Piper voice, looped by Chromium's fake microphone)."""
    import wave

    import numpy as np

    from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ
    from core.speech.tts.piper import speak_16k

    lines = ["hi, i think my card was charged twice for the same purchase",
             "can you tell me when the pending one drops off", "thanks, and what about the fee"]
    gap = np.zeros(PIPELINE_SAMPLE_RATE_HZ * 3, np.int16)
    audio = np.concatenate([part for line in lines for part in (speak_16k(line), gap)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(PIPELINE_SAMPLE_RATE_HZ)
        w.writeframes(audio.tobytes())
    return path


if __name__ == "__main__":
    raise SystemExit(main())
