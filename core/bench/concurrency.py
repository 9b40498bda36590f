"""Concurrency: N voice sessions fed real-time audio in one process.

``python -m core.bench.concurrency [--stt offline|cloud|both] [--levels 1,10,25] [--seconds 20]
[--stt-workers N] [--thread-per-session]``

Each session is a real :class:`~core.pipeline.session.VoiceSession`, run as the product runs
transcription-only calls: all of them on one shared event loop
(:class:`~core.pipeline.session_loop.SessionLoop`; ``--thread-per-session``: a thread and loop
each, as calls with a voice agent run), with the configured endpointer and either the offline
recogniser (the embedded default, Moonshine on the shared decode threads,
:mod:`core.speech.stt.neural`; with ``--stt-workers N`` and ``VC_STT_PROVIDER=pocketsphinx``,
pocketsphinx decoding in N worker processes, :mod:`core.speech.stt.process_pool`) or the Deepgram adapter against a
:class:`~core.bench.simulated.SimulatedDeepgram` running in a *child process* (so its
CPU is not counted as ours). One feeder thread hands every session a 20 ms frame every
20 ms through ``push_pcm``, as the browser bridge does.
Each session plays the pack's caller sentences (espeak-ng) with
:data:`CALLER_PAUSE_S` of silence after each (the agent's turn), from a random offset so
sessions do not speak in step.

Per level:

* **lag**: for every frame, the time its processing finished minus the time it was due
  (its place in the real-time schedule); p50/p95 over all frames after the first
  :data:`WARMUP_S`, and the worst session's p95;
* **transcript latency**: end of speech → final transcript (includes the
  end-of-utterance silence, and the simulated provider's delay for cloud);
* **CPU**: process CPU seconds per second of audio per session (1.0 = one core), and
  the cores used in all; **memory**: RSS growth per session. Offline STT worker
  processes are counted in both (their CPU time and RSS are read from ``/proc``).

A level is real time when the lag p95 is under :data:`REAL_TIME_LAG_P95_MS`; levels
stop after :data:`STOP_AFTER_FAILED_LEVELS` levels in a row that are not.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.report import emit, pct
from core.bench.voice import caller_turns_of
from core.config import Settings
from core.pipeline.events import FinalEvent, SessionEvent
from core.pipeline.session import VoiceSession
from core.pipeline.session_loop import SessionLoop
from core.services import Services, build_services
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.speech.stt import STTEngine
from core.speech.tts.espeak import speak_16k

FRAME_MS = 20  # what the browser bridge hands over (aiortc's 20 ms frames)
LEVELS = (1, 10, 25, 50, 100, 200)
AUDIO_S = 20.0  # audio fed to each session per level
WARMUP_S = 1.0  # frames due in the first second are left out of the lag figures
CALLER_PAUSE_S = 2.0  # silence after each caller sentence
REAL_TIME_LAG_P95_MS = 100.0
STOP_AFTER_FAILED_LEVELS = 2
REFINE_STEP = 5  # the largest real-time level is narrowed down to this many sessions
DRAIN_TIMEOUT_S = 30.0
SIMULATED_KEY = "simulated"


class _TimedSession(VoiceSession):
    """A session that notes when each frame's processing finished (instrumentation only)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.done_at: list[float] = []
        self.final_latencies_ms: list[float] = []
        self.add_listener(self._on_event)

    def _process_frame(self, *args: Any) -> None:
        super()._process_frame(*args)
        self.done_at.append(time.monotonic())

    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, FinalEvent):
            self.final_latencies_ms.append(event.timing.speech_end_to_final_ms)


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_BYTES
    except OSError:  # a worker that has exited
        return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (0 if it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime, stime


def _workers_of(stt: STTEngine) -> list[int]:
    """Process ids of the engine's decoding workers (none for in-process engines)."""
    return list(getattr(stt, "worker_pids", None) or [])


def call_audio(services: Services) -> Int16Array:
    """One caller's side: each scripted sentence, then :data:`CALLER_PAUSE_S` of silence."""
    pause = np.zeros(int(CALLER_PAUSE_S * PIPELINE_SAMPLE_RATE_HZ), np.int16)
    sentences = [t for c in caller_turns_of(services) for t in c[:2]]
    return np.concatenate([part for s in sentences for part in (speak_16k(s), pause)])


def run_level(
    services: Services, stt: STTEngine, n: int, audio: Int16Array, seconds: float, seed: int = 0,
    prewarm: bool = False, frame_ms: int = FRAME_MS, shared_loop: bool = True,
) -> dict[str, Any]:
    """Feed ``n`` sessions ``seconds`` of real-time audio each; lag, latency, CPU, memory.

    ``shared_loop`` runs the sessions on one :class:`~core.pipeline.session_loop.SessionLoop`
    (as the product runs transcription-only calls) instead of a thread each.

    ``prewarm`` opens and drops ``n`` streams first, so a pooled engine (pocketsphinx)
    has a decoder per session, as in a process that has been serving calls a while.
    ``frame_ms`` is the audio handed over per call (larger: fewer cross-thread wake-ups).
    """
    frame_samples = PIPELINE_SAMPLE_RATE_HZ * frame_ms // 1000
    rng = np.random.default_rng(seed + n)
    if prewarm:
        for stream in [stt.open() for _ in range(n)]:
            stream.cancel()
        wait_idle = getattr(stt, "wait_idle", None)  # worker processes build their decoders
        if wait_idle is not None:
            wait_idle()
    frames_per_session = int(seconds * 1000 / frame_ms)
    workers = _workers_of(stt)
    rss_before = _rss_bytes() + sum(_rss_bytes(p) for p in workers)
    host = SessionLoop(name="bench-sessions") if shared_loop else None
    sessions = [
        _TimedSession(store=services.store, stt=stt, endpointer_factory=services.endpointer_factory,
                      source="bench", host=host)
        for _ in range(n)
    ]
    for s in sessions:
        s.start()
    offsets = rng.integers(0, audio.size // frame_samples, size=n)
    looped = np.concatenate([audio, audio[: (frames_per_session + 1) * frame_samples]])
    workers_cpu0 = sum(_cpu_s(p) for p in workers)
    cpu0, wall0 = time.process_time() + workers_cpu0, time.monotonic()
    for k in range(frames_per_session):  # feeder: every session gets frame k at t0 + k·20 ms
        due = wall0 + k * frame_ms / 1000.0
        time.sleep(max(0.0, due - time.monotonic()))
        for s, off in zip(sessions, offsets, strict=True):
            start = (int(off) + k) * frame_samples % audio.size
            s.push_pcm(looped[start : start + frame_samples])
    fed_wall = time.monotonic() - wall0
    for s in sessions:
        s.wait_idle(DRAIN_TIMEOUT_S)
    workers_cpu_s = sum(_cpu_s(p) for p in workers) - workers_cpu0
    cpu_s = time.process_time() + workers_cpu_s + workers_cpu0 - cpu0
    wall_s = time.monotonic() - wall0
    rss_after = _rss_bytes() + sum(_rss_bytes(p) for p in workers)
    lags: list[np.ndarray] = []
    per_session_p95: list[float] = []
    finals: list[float] = []
    first_counted = int(WARMUP_S * 1000 / frame_ms)
    for s in sessions:
        done = np.asarray(s.done_at[first_counted:frames_per_session])
        due_at = wall0 + np.arange(first_counted, first_counted + done.size) * frame_ms / 1000.0
        lag = np.maximum(0.0, (done - due_at) * 1000.0)
        lags.append(lag)
        if lag.size:
            per_session_p95.append(float(np.percentile(lag, 95)))
        finals.extend(s.final_latencies_ms)
    # stopped together: each may wait for its open utterance's final, and stopped one
    # after another the last ones would sit silent long enough to time out on their own
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda session: session.stop(), sessions))
    if host is not None:
        host.close()
    all_lags = np.concatenate(lags) if lags else np.zeros(0)
    dropped = sum(frames_per_session - len(s.done_at) for s in sessions)

    lag_p95 = pct(all_lags, 95)
    return {
        "sessions": n,
        "shared_loop": shared_loop,
        "audio_s_per_session": seconds,
        "feeder_wall_s": round(fed_wall, 2),
        "lag_ms_p50": pct(all_lags, 50),
        "lag_ms_p95": lag_p95,
        "lag_ms_max": pct(all_lags, 100),
        "worst_session_lag_ms_p95": max(per_session_p95) if per_session_p95 else None,
        "frames_not_processed": dropped,
        "finals": len(finals),
        "transcript_latency_ms_p50": pct(finals, 50),
        "transcript_latency_ms_p95": pct(finals, 95),
        "cpu_cores_used": cpu_s / wall_s,
        "stt_worker_processes": len(workers),
        "stt_workers_cpu_cores_used": workers_cpu_s / wall_s,
        "stt_workers_rss_mb": sum(_rss_bytes(p) for p in workers) / 2**20,
        "cpu_per_session_realtime": cpu_s / (n * seconds),  # 1.0 = one core per session
        "rss_mb_per_session": (rss_after - rss_before) / n / 2**20,
        "real_time": lag_p95 is not None and lag_p95 < REAL_TIME_LAG_P95_MS and dropped == 0,
    }


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def sweep(
    services: Services, stt: STTEngine, levels: tuple[int, ...], seconds: float,
    log: Callable[[str], None] = _progress, prewarm: bool = False, frame_ms: int = FRAME_MS,
    shared_loop: bool = True, refine: bool = True,
) -> dict[str, Any]:
    """Run levels in order until :data:`STOP_AFTER_FAILED_LEVELS` in a row miss real time,
    then (``refine``) narrow down the largest real-time level between the given ones."""
    audio = call_audio(services)
    rows: list[dict[str, Any]] = []

    def measure(n: int, note: str = "") -> bool:
        row = run_level(services, stt, n, audio, seconds, prewarm=prewarm, frame_ms=frame_ms,
                        shared_loop=shared_loop)
        rows.append(row)
        log(f"  {n:>4} sessions{note}: lag p95 {row['lag_ms_p95'] or 0:.0f} ms, "
            f"{row['cpu_cores_used']:.2f} cores, real time: {row['real_time']}")
        return bool(row["real_time"])

    failed = 0
    for n in levels:
        failed = 0 if measure(n) else failed + 1
        if failed >= STOP_AFTER_FAILED_LEVELS:
            break
    while refine and (between := _between(rows)) is not None:
        measure(between, " (refining)")
    rows.sort(key=lambda r: r["sessions"])
    real_time = [r["sessions"] for r in rows if r["real_time"]]
    return {"levels": rows, "max_real_time_sessions": max(real_time) if real_time else 0}


def _between(rows: list[dict[str, Any]]) -> int | None:
    """The next level to try between the largest real-time one and the first that is not
    above it (halving the gap, in steps of :data:`REFINE_STEP`); None once it is closed."""
    passed = [r["sessions"] for r in rows if r["real_time"]]
    if not passed:
        return None
    lo = max(passed)
    above = [r["sessions"] for r in rows if not r["real_time"] and r["sessions"] > lo]
    if not above or min(above) - lo <= REFINE_STEP:
        return None
    hi = min(above)
    return min(hi - REFINE_STEP, lo + max(REFINE_STEP, round((hi - lo) / 2 / REFINE_STEP) * REFINE_STEP))


def _serve_deepgram(ports: Any, stop: Any, seed: int, compression: bool) -> None:
    from core.bench.simulated import LatencyProfile, SimulatedDeepgram

    with SimulatedDeepgram(profile=LatencyProfile(seed), compression=compression) as server:
        ports.put(server.port)
        stop.wait()


@contextmanager
def deepgram_in_child(seed: int = 0, compression: bool = True) -> Iterator[str]:
    """A :class:`SimulatedDeepgram` in a child process; yields its websocket URL."""
    ctx = mp.get_context("spawn")
    ports, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve_deepgram, args=(ports, stop, seed, compression), daemon=True)
    child.start()
    try:
        yield f"ws://127.0.0.1:{ports.get(timeout=60)}"
    finally:
        stop.set()
        child.join(10)


def run(
    modes: tuple[str, ...] = ("offline", "cloud"), levels: tuple[int, ...] = LEVELS,
    seconds: float = AUDIO_S, log: Callable[[str], None] = _progress,
    frame_ms: int = FRAME_MS, compression: bool = True, stt_workers: int = 0,
    shared_loop: bool = True, offline_workers: int | None = None,
) -> dict[str, Any]:
    """Sweep ``levels`` for each mode; ``frame_ms`` and ``compression`` (the simulated
    Deepgram accepting permessage-deflate) are there to measure what they cost;
    ``stt_workers`` above 0 decodes offline STT in that many worker processes;
    ``shared_loop`` hosts the sessions on one event loop instead of a thread each.
    ``offline_workers`` above 0 sweeps offline STT a second time, decoded in that many
    worker processes (``VC_STT_WORKERS``), under the key ``offline_workers``."""
    out: dict[str, Any] = {"real_time_lag_p95_ms": REAL_TIME_LAG_P95_MS, "caller_pause_s": CALLER_PAUSE_S,
                           "frame_ms": frame_ms, "websocket_compression": compression,
                           "stt_workers": stt_workers, "shared_loop": shared_loop}
    with tempfile.TemporaryDirectory() as tmp:
        services = build_services(Settings(data_dir=Path(tmp), stt_workers=stt_workers))
        if "offline" in modes:
            engine = services.settings.stt_provider
            where = f"{stt_workers} worker processes" if stt_workers and engine == "pocketsphinx" else "in-process"
            log(f"concurrency, offline STT ({engine}, {where})")
            out["offline"] = sweep(services, services.stt, levels, seconds, log, prewarm=True, frame_ms=frame_ms,
                                   shared_loop=shared_loop)
        if "offline" in modes and offline_workers:  # the same, decoded in worker processes
            from core.providers.speech import build_stt

            log(f"concurrency, offline STT (pocketsphinx, {offline_workers} worker processes)")
            pooled = build_stt(
                Settings(data_dir=Path(tmp), stt_workers=offline_workers, stt_provider="pocketsphinx"), services.pack
            )
            try:
                out["offline_workers"] = {
                    "stt_workers": offline_workers,
                    **sweep(services, pooled, levels, seconds, log, prewarm=True, frame_ms=frame_ms,
                            shared_loop=shared_loop),
                }
            finally:
                getattr(pooled, "close", lambda: None)()
        if "cloud" in modes:
            from core.providers.deepgram_stt import DeepgramSTT

            log("concurrency, simulated Deepgram (child process)")
            with deepgram_in_child(compression=compression) as url:
                stt = DeepgramSTT(SIMULATED_KEY, base_url=url)
                out["cloud"] = sweep(services, stt, levels, seconds, log, frame_ms=frame_ms,
                                     shared_loop=shared_loop)
        getattr(services.store, "close", lambda: None)()
        getattr(services.stt, "close", lambda: None)()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stt", choices=("offline", "cloud", "both"), default="both")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--seconds", type=float, default=AUDIO_S)
    parser.add_argument("--frame-ms", type=int, default=FRAME_MS, help="audio per hand-over (20 as in the browser)")
    parser.add_argument("--no-compression", action="store_true", help="simulated Deepgram refuses permessage-deflate")
    parser.add_argument("--stt-workers", type=int, default=0,
                        help="offline STT decoded in N worker processes (0: in-process, as by default)")
    parser.add_argument("--thread-per-session", action="store_true",
                        help="each session on its own thread and loop (as calls with a voice agent run) "
                        "instead of sharing one loop (as transcription-only calls run)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    modes = ("offline", "cloud") if args.stt == "both" else (args.stt,)
    levels = tuple(int(x) for x in args.levels.split(","))
    result = run(modes, levels, args.seconds, frame_ms=args.frame_ms, compression=not args.no_compression,
                 stt_workers=args.stt_workers, shared_loop=not args.thread_per_session)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
