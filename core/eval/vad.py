"""Voice activity detection: frame classifiers and the endpointer, measured.

Three conditions, each run through :class:`core.pipeline.vad.Endpointer` with the product's
thresholds (:class:`EndpointConfig` defaults) and every candidate frame classifier
(WebRTC modes 0-3 with/without the -50 dBFS floor and with/without the noise gate,
and plain energy thresholds):

* **dev clips** (real speech, ``references.tsv``): is an utterance detected, and what
  fraction of the reference voiced time falls outside every utterance ("speech
  missed"). Reference voiced time is approximated on the clean clip by 10 ms frames
  within 25 dB of the clip's loud frames (95th percentile level) and above -60 dBFS.
* **no speech**, 60 s each: digital silence, white noise at -60/-45/-35 dBFS, mains hum
  (50 Hz + harmonics, -35 dBFS), and babble (six reversed espeak voices, -45 dBFS).
  False alarms = utterances opened per minute.
* **scripted speech**: espeak sentences separated by 1 s pauses, clean and with
  -45 dBFS white noise: utterances found vs expected (misses, splits, merges) and the
  end-of-speech delay (when the ``end`` event fires, minus the end of the speech).

Example::

    python -m core.eval vad            # table
    python -m core.eval vad --json     # last line: JSON with every figure
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.eval import DEFAULT_MANIFEST, Clip, format_table, json_line, load_manifest, percentile
from core.pipeline.vad import (
    FRAME_MS,
    EndpointConfig,
    Endpointer,
    EnergyFrameClassifier,
    FrameClassifier,
    WebRtcFrameClassifier,
)
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array

RATE = PIPELINE_SAMPLE_RATE_HZ
NO_FLOOR_DBFS = -200.0

# Sentences for the scripted condition: caller-style, varied length.
SCRIPT_SENTENCES = (
    "hi i lost my debit card yesterday",
    "yes",
    "can you tell me why there is a fee on my statement",
    "the last four digits are one two three four",
    "no thank you",
    "i want to send five hundred dollars to my sister",
    "okay great",
    "where is the nearest branch that is open on saturday",
)


# --- candidates ---------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    name: str
    make: Callable[[], FrameClassifier]


def candidates(include_floorless: bool = True) -> list[Candidate]:
    """WebRTC modes 0-3 with the -50 dBFS floor and without, each with and without the
    noise gate, and plain energy thresholds (the baseline)."""
    out: list[Candidate] = []
    floors = [(-50.0, "+floor50")] + ([(NO_FLOOR_DBFS, "")] if include_floorless else [])
    for mode in range(4):
        for floor, fname in floors:
            for gate, gname in ((None, ""), (6.0, "+gate6")):
                out.append(
                    Candidate(
                        f"webrtc{mode}{fname}{gname}",
                        lambda m=mode, f=floor, g=gate: WebRtcFrameClassifier(m, f, snr_gate_db=g),
                    )
                )
    # the recommended setting: mode 3, gate, a floor low enough for quiet talkers
    out.append(
        Candidate("webrtc3+floor60+gate6", lambda: WebRtcFrameClassifier(3, -60.0, snr_gate_db=6.0))
    )
    for level in (-45.0, -40.0, -35.0):
        out.append(Candidate(f"energy{level:.0f}", lambda v=level: EnergyFrameClassifier(v)))
    return out


# --- running the endpointer ------------------------------------------------------------
@dataclass(frozen=True)
class Utterance:
    start_ms: float  # includes pre-roll
    end_ms: float  # end of the last voiced frame (or the cut, for max_length)
    emitted_ms: float  # stream time when the end event was produced
    reason: str


@dataclass
class Run:
    utterances: list[Utterance] = field(default_factory=list)
    opened: int = 0  # start events (includes abandoned ones)
    abandoned: int = 0
    frames: int = 0
    voiced_frames: list[bool] = field(default_factory=list)


class _Recording:
    """Wraps a classifier to keep its per-frame decisions."""

    def __init__(self, inner: FrameClassifier):
        self.inner = inner
        self.decisions: list[bool] = []

    def is_speech(self, frame: Int16Array) -> bool:
        d = self.inner.is_speech(frame)
        self.decisions.append(d)
        return d


def run_endpointer(
    audio: Int16Array,
    classifier: FrameClassifier,
    config: EndpointConfig | None = None,
    chunk_ms: int = 10,
) -> Run:
    """Feed ``audio`` in ``chunk_ms`` chunks; collect utterances with their emission time."""
    rec = _Recording(classifier)
    ep = Endpointer(config or EndpointConfig(), rec)
    run = Run()
    step = RATE * chunk_ms // 1000
    start: float | None = None

    def handle(events: list[Any]) -> None:
        nonlocal start
        for ev in events:
            if ev.kind == "start":
                run.opened += 1
                start = ev.t_ms
            elif ev.kind == "end":
                run.utterances.append(Utterance(start or 0.0, ev.t_ms, ep.stream_ms, str(ev.reason)))
            elif ev.kind == "abandon":
                run.abandoned += 1

    for i in range(0, audio.size, step):
        handle(ep.process(audio[i : i + step]))
    handle(ep.finish())
    run.voiced_frames = rec.decisions
    run.frames = len(rec.decisions)
    return run


# --- reference voiced spans -------------------------------------------------------------
def reference_voiced(audio: Int16Array, frame_ms: int = 10, below_loud_db: float = 25.0) -> np.ndarray:
    """Boolean per ``frame_ms`` frame: high-SNR energy decision on a clean clip."""
    n = RATE * frame_ms // 1000
    frames = audio[: audio.size // n * n].astype(np.float64).reshape(-1, n) / 32768.0
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.percentile(level, 95)
    return (level >= loud - below_loud_db) & (level > -60.0)


def spans(mask: np.ndarray, frame_ms: int, min_gap_ms: int = 0) -> list[tuple[float, float]]:
    """Runs of True as (start_ms, end_ms); gaps shorter than ``min_gap_ms`` are bridged."""
    out: list[tuple[float, float]] = []
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return out
    start = prev = int(idx[0])
    for i in idx[1:]:
        i = int(i)
        if (i - prev - 1) * frame_ms > min_gap_ms:
            out.append((start * frame_ms, (prev + 1) * frame_ms))
            start = i
        prev = i
    out.append((start * frame_ms, (prev + 1) * frame_ms))
    return out


def missed_fraction(ref_mask: np.ndarray, frame_ms: int, utts: Sequence[Utterance]) -> float:
    """Fraction of reference voiced frames outside every utterance."""
    total = int(ref_mask.sum())
    if total == 0:
        return 0.0
    t = (np.arange(ref_mask.size) + 0.5) * frame_ms
    covered = np.zeros(ref_mask.size, bool)
    for u in utts:
        covered |= (t >= u.start_ms) & (t <= u.end_ms + frame_ms)
    return float((ref_mask & ~covered).sum() / total)


# --- audio for the conditions --------------------------------------------------------------
def white_noise(seconds: float, dbfs: float, seed: int = 0) -> Int16Array:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 32768.0 * 10 ** (dbfs / 20.0), int(seconds * RATE))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def hum(seconds: float, dbfs: float, fundamental_hz: float = 50.0) -> Int16Array:
    """Mains hum: a fundamental and decaying harmonics (100, 150, ... Hz), at ``dbfs`` RMS."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum((0.6**k) * np.sin(2 * np.pi * fundamental_hz * (k + 1) * t + k) for k in range(8))
    x = x / np.sqrt(np.mean(x**2)) * 32768.0 * 10 ** (dbfs / 20.0)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def babble(seconds: float, dbfs: float, voices: int = 6) -> Int16Array:
    """Several reversed espeak voices summed: speech-like spectrum, no words."""
    from core.speech.tts.espeak import speak_16k

    n = int(seconds * RATE)
    out = np.zeros(n, np.float64)
    lines = [*SCRIPT_SENTENCES]
    for v in range(voices):
        parts: list[np.ndarray] = []
        k = v
        while sum(p.size for p in parts) < n:
            parts.append(speak_16k(lines[k % len(lines)], pitch=30 + 8 * v, rate_wpm=150 + 10 * v)[::-1])
            k += 1
        track = np.concatenate(parts)[:n].astype(np.float64)
        out += np.roll(track, v * 3711)
    out = out / np.sqrt(np.mean(out**2)) * 32768.0 * 10 ** (dbfs / 20.0)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def no_speech_conditions(seconds: float = 60.0) -> list[tuple[str, Int16Array]]:
    return [
        ("silence", np.zeros(int(seconds * RATE), np.int16)),
        ("white-60", white_noise(seconds, -60.0, 1)),
        ("white-45", white_noise(seconds, -45.0, 2)),
        ("white-35", white_noise(seconds, -35.0, 3)),
        ("hum-45", hum(seconds, -45.0)),
        ("hum-35", hum(seconds, -35.0)),
        ("babble-45", babble(seconds, -45.0)),
    ]


def mix(a: Int16Array, b: Int16Array) -> Int16Array:
    return np.clip(a.astype(np.int32) + b[: a.size].astype(np.int32), -32768, 32767).astype(np.int16)


def scripted_conditions() -> dict[str, tuple[Int16Array, list[tuple[float, float]]]]:
    """The scripted sentences clean, and with white noise, hum and babble at -45 dBFS."""
    audio, ref = scripted(None)
    seconds = audio.size / RATE
    return {
        "clean": (audio, ref),
        "+white45": (mix(audio, white_noise(seconds, -45.0, 7)), ref),
        "+hum45": (mix(audio, hum(seconds, -45.0)), ref),
        "+babble45": (mix(audio, babble(seconds, -45.0)), ref),
    }


def scripted(
    noise_dbfs: float | None = None, gap_s: float = 1.0
) -> tuple[Int16Array, list[tuple[float, float]]]:
    """Espeak sentences with pauses; returns audio and the voiced span of each sentence."""
    from core.speech.tts.espeak import script_audio

    audio, sent_spans = script_audio(list(SCRIPT_SENTENCES), gap_s=gap_s, lead_s=1.0)
    if noise_dbfs is not None:
        audio = mix(audio, white_noise(audio.size / RATE, noise_dbfs, 7))
    return audio, [(s, e) for s, e, _ in sent_spans]


# --- scoring the scripted condition -----------------------------------------------------------
@dataclass(frozen=True)
class SegmentScore:
    expected: int
    found: int
    misses: int
    splits: int
    merges: int
    end_delays_ms: tuple[float, ...]  # emission time - reference end, per matched sentence
    end_errors_ms: tuple[float, ...]  # |end t_ms - reference end|


def score_segments(ref: Sequence[tuple[float, float]], utts: Sequence[Utterance]) -> SegmentScore:
    def overlaps(a: tuple[float, float], u: Utterance) -> bool:
        return u.start_ms < a[1] and u.end_ms + FRAME_MS > a[0]

    per_ref = [[u for u in utts if overlaps(r, u)] for r in ref]
    per_utt = [[r for r in ref if overlaps(r, u)] for u in utts]
    delays, errors = [], []
    for r, us in zip(ref, per_ref, strict=True):
        if len(us) == 1 and len([x for x in ref if overlaps(x, us[0])]) == 1:
            delays.append(us[0].emitted_ms - r[1])
            errors.append(abs(us[0].end_ms - r[1]))
    return SegmentScore(
        expected=len(ref),
        found=len(utts),
        misses=sum(1 for us in per_ref if not us),
        splits=sum(1 for us in per_ref if len(us) > 1),
        merges=sum(1 for rs in per_utt if len(rs) > 1),
        end_delays_ms=tuple(delays),
        end_errors_ms=tuple(errors),
    )


# --- the whole measurement -------------------------------------------------------------------
@dataclass
class Result:
    name: str
    dev_detected: int = 0
    dev_clips: int = 0
    dev_utterances: int = 0
    dev_missed: float = 0.0  # fraction of reference voiced time not in any utterance
    dev_frame_recall: float = 0.0  # classifier frames vs reference voiced frames
    false_alarms_per_min: dict[str, float] = field(default_factory=dict)
    scripted: dict[str, SegmentScore] = field(default_factory=dict)
    cpu_ms_per_s: float = 0.0

    def row(self) -> list[Any]:
        fa = self.false_alarms_per_min
        cells: list[Any] = [
            self.name,
            f"{self.dev_detected}/{self.dev_clips}",
            self.dev_utterances,
            f"{100 * self.dev_missed:.1f}",
            f"{100 * self.dev_frame_recall:.0f}",
            *(f"{fa[k]:.1f}" for k in fa),
        ]
        for sc in self.scripted.values():
            cells.append(f"{sc.found}/{sc.expected} m{sc.misses}s{sc.splits}g{sc.merges}")
            delay = percentile(sc.end_delays_ms, 50)
            cells.append("-" if np.isnan(delay) else f"{delay:.0f}")
        cells.append(f"{self.cpu_ms_per_s:.1f}")
        return cells

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dev_detected": self.dev_detected,
            "dev_clips": self.dev_clips,
            "dev_utterances": self.dev_utterances,
            "dev_missed": round(self.dev_missed, 4),
            "dev_frame_recall": round(self.dev_frame_recall, 4),
            "false_alarms_per_min": {k: round(v, 2) for k, v in self.false_alarms_per_min.items()},
            "scripted": {
                k: {
                    "expected": s.expected,
                    "found": s.found,
                    "misses": s.misses,
                    "splits": s.splits,
                    "merges": s.merges,
                    "end_delay_p50_ms": round(percentile(s.end_delays_ms, 50), 1),
                    "end_delay_p95_ms": round(percentile(s.end_delays_ms, 95), 1),
                    "end_error_p50_ms": round(percentile(s.end_errors_ms, 50), 1),
                }
                for k, s in self.scripted.items()
            },
            "cpu_ms_per_audio_s": round(self.cpu_ms_per_s, 2),
        }


def measure(
    cands: Sequence[Candidate],
    dev: Sequence[Clip],
    noise: Sequence[tuple[str, Int16Array]],
    scripts: dict[str, tuple[Int16Array, list[tuple[float, float]]]],
    config: EndpointConfig | None = None,
) -> list[Result]:
    config = config or EndpointConfig()
    results = []
    for cand in cands:
        res = Result(cand.name, dev_clips=len(dev))
        cpu = 0.0
        audio_s = 0.0
        missed_num = missed_den = 0.0
        rec_num = rec_den = 0
        for clip in dev:
            t = time.process_time()
            run = run_endpointer(clip.audio, cand.make(), config)
            cpu += time.process_time() - t
            audio_s += clip.duration_s
            res.dev_detected += bool(run.utterances)
            res.dev_utterances += len(run.utterances)
            ref10 = reference_voiced(clip.audio, 10)
            w = float(ref10.sum())
            missed_num += missed_fraction(ref10, 10, run.utterances) * w
            missed_den += w
            # frame recall: reference voiced 30 ms frames the classifier called speech
            ref30 = reference_voiced(clip.audio, FRAME_MS)[: run.frames]
            dec = np.asarray(run.voiced_frames[: ref30.size], bool)
            rec_num += int((ref30 & dec).sum())
            rec_den += int(ref30.sum())
        res.dev_missed = missed_num / missed_den if missed_den else 0.0
        res.dev_frame_recall = rec_num / rec_den if rec_den else 0.0
        for name, audio in noise:
            t = time.process_time()
            run = run_endpointer(audio, cand.make(), config)
            cpu += time.process_time() - t
            audio_s += audio.size / RATE
            res.false_alarms_per_min[name] = run.opened / (audio.size / RATE / 60.0)
        for name, (audio, ref) in scripts.items():
            t = time.process_time()
            run = run_endpointer(audio, cand.make(), config)
            cpu += time.process_time() - t
            audio_s += audio.size / RATE
            res.scripted[name] = score_segments(ref, run.utterances)
        res.cpu_ms_per_s = 1000.0 * cpu / audio_s if audio_s else 0.0
        results.append(res)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST,
                        help="dev clips (skipped with a note if missing)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each no-speech signal")
    parser.add_argument("--no-floorless", action="store_true",
                        help="skip the WebRTC variants without the dBFS floor")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")


def run(args: argparse.Namespace) -> int:
    dev: list[Clip] = []
    if args.manifest.exists():
        dev = load_manifest(args.manifest)
    else:
        print(f"note: {args.manifest} not found; dev-clip columns are empty", file=sys.stderr)
    noise = no_speech_conditions(args.seconds)
    scripts = scripted_conditions()
    cfg = EndpointConfig()
    results = measure(candidates(not args.no_floorless), dev, noise, scripts, cfg)
    headers = [
        "classifier", "dev det", "dev utts", "dev miss%", "frame rec%",
        *(f"FA {n}" for n, _ in noise),
        *(h for s in scripts for h in (f"script {s}", "EOS ms")),
        "cpu ms/s",
    ]
    print(format_table(headers, [r.row() for r in results], max_width=40))
    print(
        f"\nendpointer: start {cfg.speech_start_ms} ms voiced, end after "
        f"{cfg.end_of_utterance_silence_ms} ms silence, min speech {cfg.min_speech_ms} ms, "
        f"max {cfg.max_utterance_ms} ms, pre-roll {cfg.pre_roll_ms} ms.\n"
        f"FA = utterances opened per minute of no-speech audio. script: utterances "
        f"found/expected, m=misses s=splits g=merges; EOS ms = p50 delay from the end of "
        f"the speech to the end event."
    )
    if args.json:
        print(json_line({"config": cfg.__dict__, "results": [r.as_dict() for r in results]}))
    return 0
