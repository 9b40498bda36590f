"""Voice-to-voice in a real browser, summarised over repeated Talk calls.

``make bench-browser RUNS=10`` runs the Talk browser test (tests/e2e/test_talk_browser.py:
Chromium's fake microphone asks a question over WebRTC, the agent answers over the same
connection) ``RUNS`` times and keeps each run's ``talk_latency.json``; this module reads
them and prints p50/p95 of what a caller hears — caller speech end → first agent audio
sample in the browser — next to the server's own split of the same turns.

``python -m core.bench.browser DIR [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("endpoint_ms", "stt_ms", "reply_first_token_ms", "tts_first_audio_ms", "voice_to_voice_ms")


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 over runs of the browser figure and of each server-side stage."""
    browser = [float(r["browser"]["voice_to_voice_ms"]) for r in runs if r.get("browser", {}).get("voice_to_voice_ms")]
    out: dict[str, Any] = {"runs": len(runs), "turns_measured": len(browser)}
    out["browser_voice_to_voice_ms"] = {"p50": _pct(browser, 50), "p95": _pct(browser, 95), "values": browser}
    for stage in STAGES:
        vals = [float(r["turn"][stage]) for r in runs if r.get("turn") and r["turn"].get(stage) is not None]
        out[f"server_{stage}"] = {"p50": _pct(vals, 50), "p95": _pct(vals, 95)}
    # what the browser adds on top of the server's figure: WebRTC both ways, jitter buffer, audio graph
    paired = [
        float(r["browser"]["voice_to_voice_ms"]) - float(r["turn"]["voice_to_voice_ms"])
        for r in runs
        if r.get("browser", {}).get("voice_to_voice_ms") and r.get("turn") and r["turn"].get("voice_to_voice_ms")
    ]
    out["transport_and_playout_ms"] = {"p50": _pct(paired, 50), "p95": _pct(paired, 95)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.bench.browser", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of talk_latency*.json files, one per run")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    files = sorted(args.folder.glob("*.json"))
    if not files:
        print(f"no run results in {args.folder}", file=sys.stderr)
        return 2
    summary = summarise([json.loads(f.read_text()) for f in files])
    b = summary["browser_voice_to_voice_ms"]
    print(f"browser voice-to-voice over {summary['turns_measured']} calls: p50 {b['p50']} ms, p95 {b['p95']} ms")
    for stage in STAGES:
        s = summary[f"server_{stage}"]
        print(f"  server {stage:<22} p50 {s['p50']} ms, p95 {s['p95']} ms")
    t = summary["transport_and_playout_ms"]
    print(f"  WebRTC + jitter buffer + playout    p50 {t['p50']} ms, p95 {t['p95']} ms")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
