"""Run every benchmark, print one table and write the figures as JSON.

``python -m core.bench [--quick] [--only voice,cloud,...] [--out bench-results]``

Figures are percentiles and ratios from one run, on whatever else the machine is doing:
compare runs on the same machine, and read docs/performance.md for how they were taken.
``--quick`` is a short version (few turns, small sizes) to check that everything runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.eval import format_table, json_line

PARTS = ("voice", "cloud", "concurrency", "copilot", "startup")
FULL: dict[str, dict[str, Any]] = {
    "voice": {"turns": 50, "barge_questions": 8},
    "cloud": {"turns": 50},
    "concurrency": {"offline_workers": os.cpu_count() or 1},
    "copilot": {},
    "startup": {"runs": 3},
}
QUICK: dict[str, dict[str, Any]] = {
    "voice": {"turns": 6, "barge_questions": 0},
    "cloud": {"turns": 6},
    "concurrency": {"levels": (1, 10), "seconds": 6.0},
    "copilot": {"chunks": (1_000,), "minutes": (1,), "kb_queries": 50, "wrapup_runs": 2},
    "startup": {"runs": 1},
}


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, Python: what the figures depend on."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        meminfo = Path("/proc/meminfo").read_text().split()
        info["ram_gib"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
        info["load_avg_1m_at_start"] = os.getloadavg()[0]
    except (OSError, StopIteration, ValueError):
        pass
    return info


def _runner(part: str) -> Callable[..., dict[str, Any]]:
    from importlib import import_module

    return import_module(f"core.bench.{part}").run  # type: ignore[no-any-return]


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.0f}"


def table(results: dict[str, Any]) -> str:
    """One row per figure: what, p50 (or value), p95, target."""
    rows: list[tuple[str, str, str, str]] = []
    targets = {"voice_to_voice": "p50 ≤ 700, p95 ≤ 900", "tts_first_audio": "p95 ≤ 150"}
    if v := results.get("voice", {}).get("voice_to_voice"):
        for stage in ("endpointing", "stt", "reply_first_token", "tts_first_audio", "voice_to_voice"):
            rows.append((f"offline {stage} ms ({v['turns']} turns)", _ms(v[f"{stage}_ms_p50"]),
                         _ms(v[f"{stage}_ms_p95"]), targets.get(stage, "")))
    if t := results.get("voice", {}).get("tts_first_audio"):
        rows.append((f"Piper first audio alone ms ({t['pieces']} first pieces)", _ms(t["split_ms_p50"]),
                     _ms(t["split_ms_p95"]), "p95 ≤ 150"))
        rows.append(("  the same, first sentence rendered whole ms", _ms(t["whole_ms_p50"]), _ms(t["whole_ms_p95"]),
                     f"before the split; {t['speedup_p50']:.1f}× slower (p50)"))
    if c := results.get("cloud"):
        rows.append(("simulated cloud voice-to-voice ms", _ms(c["voice_to_voice_ms_p50"]), _ms(c["voice_to_voice_ms_p95"]), ""))
        rows.append(("  overhead over providers ms", _ms(c["overhead_ms_p50"]), _ms(c["overhead_ms_p95"]), "p95 ≤ 30"))
        rows.append(("  ... without first-clause wait ms", _ms(c["overhead_without_clause_ms_p50"]),
                     _ms(c["overhead_without_clause_ms_p95"]), ""))
    for mode in ("offline", "offline_workers", "cloud"):
        if m := results.get("concurrency", {}).get(mode):
            label = {"offline": "offline STT", "cloud": "cloud STT"}.get(mode) or f"pocketsphinx, {m['stt_workers']} workers"
            for r in m["levels"]:
                rows.append((f"{label}, {r['sessions']} sessions: lag ms", _ms(r["lag_ms_p50"]), _ms(r["lag_ms_p95"]),
                             f"{r['cpu_cores_used']:.2f} cores, {r['rss_mb_per_session']:.1f} MB/session"))
            rows.append((f"{label}: most real-time sessions", str(m["max_real_time_sessions"]), "",
                         {"cloud": "≥ 200", "offline": "≥ 20 (neural)"}.get(mode, "")))
    if cp := results.get("copilot"):
        rows.append(("intent predict ms", _ms(cp["intent"]["p50_ms"]), _ms(cp["intent"]["p95_ms"]), ""))
        for k in cp["kb"]:
            rows.append((f"KB search ms at {k['bench_chunks']} chunks", f"{k['bench_index_p50_ms']:.1f}",
                         f"{k['bench_index_p95_ms']:.1f}", "p95 ≤ 30 at 100k"))
            if "bench_live_p50_ms" in k:
                rows.append(("  with newest turn encoded ms", f"{k['bench_live_p50_ms']:.1f}", f"{k['bench_live_p95_ms']:.1f}", ""))
        for w in cp["wrapup"]:
            rows.append((f"wrap-up ms, {w['call_minutes']}-minute call", _ms(w["p50_ms"]), _ms(w["max_ms"]) + " (max)",
                         "≤ 2000 at 10 min" if w["call_minutes"] == 10 else ""))
        for name, s in cp["store"].items():
            if isinstance(s, dict):
                for key, value in s.items():
                    rows.append((f"{name} {key.replace('_', ' ')}", f"{value:.0f}", "", ""))
            else:
                rows.append((f"{name} store", "-", "", s))
    if st := results.get("startup"):
        for key in ("page_served_s", "first_page_run_s", "services_built_s", "models_ready_s"):
            rows.append((f"start-up {key[:-2].replace('_', ' ')} s", f"{st[key]:.1f}", "", ""))
    return format_table(["figure", "p50", "p95", "target / note"], rows, max_width=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short version: every part, small sizes")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    config = QUICK if args.quick else FULL
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for part in parts:
        t0 = time.monotonic()
        print(f"[bench] {part}…", file=sys.stderr, flush=True)
        results[part] = _runner(part)(**config[part])
        results.setdefault("seconds", {})[part] = round(time.monotonic() - t0, 1)
    results["machine"]["load_avg_1m_at_end"] = os.getloadavg()[0]
    print(table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(json_line(results) + "\n")
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
