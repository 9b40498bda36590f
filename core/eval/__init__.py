"""Offline evaluation of the product's components, runnable as ``python -m core.eval``.

Each subcommand lives in its own module in this package (``core/eval/stt.py`` →
``python -m core.eval stt``). A subcommand module provides:

* a module docstring (its first line is the one-line help),
* ``add_arguments(parser: argparse.ArgumentParser) -> None``,
* ``run(args: argparse.Namespace) -> int`` (the process exit code).

Module-level imports must stay light (no model loading): the dispatcher imports only
the module that was asked for, but ``--help`` imports each one to read its docstring.

Shared helpers for reading manifests and summarising timings are below.
"""

from __future__ import annotations

import csv
import json
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array, resample

# The development data lives next to the project, never inside it.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEFAULT_MANIFEST = DEFAULT_DATA_DIR / "audio" / "references.tsv"


@dataclass(frozen=True)
class Clip:
    """One evaluation utterance: 16 kHz mono int16 audio and its reference text."""

    id: str
    audio: Int16Array
    reference: str

    @property
    def duration_s(self) -> float:
        return self.audio.size / PIPELINE_SAMPLE_RATE_HZ


def read_wav(path: Path) -> Int16Array:
    """Read a 16-bit PCM WAV as 16 kHz mono int16 (other rates are resampled, stereo mixed).

    Raises:
        ValueError: not 16-bit PCM.
    """
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        rate = w.getframerate()
        channels = w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).round().astype(np.int16)
    data = data.astype(np.int16)
    if rate != PIPELINE_SAMPLE_RATE_HZ:
        data = resample(data, rate, PIPELINE_SAMPLE_RATE_HZ)
    return data


def load_manifest(path: Path) -> list[Clip]:
    """Read a ``references.tsv`` (``id, path, ..., transcript``); paths are relative to it.

    Raises:
        FileNotFoundError: the manifest or one of its audio files is missing.
        ValueError: the manifest lacks the ``id``, ``path`` or ``transcript`` column.
    """
    path = Path(path)
    clips: list[Clip] = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"id", "path", "transcript"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            audio_path = Path(row["path"])
            if not audio_path.is_absolute():
                audio_path = path.parent / audio_path
            clips.append(Clip(row["id"], read_wav(audio_path), row["transcript"]))
    return clips


def read_lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a text file."""
    return [
        line.strip()
        for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def json_line(obj: dict[str, Any]) -> str:
    """One line of JSON; NaN becomes null so any JSON parser reads it."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), separators=(",", ":"))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 48) -> str:
    """A plain-text table; long cells are cut with an ellipsis."""

    def cell(v: Any) -> str:
        text = f"{v:.3f}" if isinstance(v, float) else str(v)
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(h) for h in headers], *[[cell(v) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
