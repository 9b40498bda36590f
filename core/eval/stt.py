"""Speech recognition accuracy and speed: WER, real-time factor, finish() latency.

Every clip goes through the product's streaming path: ``engine.open()``, ``accept()``
in small chunks (20 ms by default, like WebRTC frames), then ``finish()``.

Examples::

    python -m core.eval stt --manifest ../shared/data/audio/references.tsv
    python -m core.eval stt --sentences packs/bank/eval/caller_sentences.txt --voice piper --json
    python -m core.eval stt --manifest M --phone --hypotheses out.tsv
    python -m core.eval stt --engine pocketsphinx --lm general --manifest M

``--engine`` picks the recogniser (default: moonshine, the product's embedded default).
``--sentences`` speaks each line with the Piper voice (``--voice piper``) or espeak-ng
(any other ``--voice``, an espeak-ng voice name) and decodes it. ``--phone`` passes the
audio through an 8 kHz mu-law line first. ``--hypotheses FILE`` writes one
``id<TAB>hypothesis`` line per clip, to score with another normaliser.

Reported: corpus WER (total edits / total reference words, after
:func:`core.language.text.words`: lower case, no punctuation, numbers compared as digits however
they were written), RTF (decode time / audio time, wall clock, accept + finish) and
p50/p95 of the time ``finish()`` takes after the last audio.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.eval import (
    DEFAULT_MANIFEST,
    Clip,
    format_table,
    json_line,
    load_manifest,
    percentile,
    read_lines,
)
from core.language.text import edit_distance, words
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array

DEFAULT_PACK = Path(__file__).resolve().parents[2] / "packs" / "bank"


@dataclass(frozen=True)
class ClipResult:
    id: str
    duration_s: float
    reference: str
    hypothesis: str
    errors: int
    ref_words: int
    decode_ms: float
    finish_ms: float

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else float(self.errors > 0)


@dataclass(frozen=True)
class Report:
    results: list[ClipResult]

    @property
    def wer(self) -> float:
        total = sum(r.ref_words for r in self.results)
        return sum(r.errors for r in self.results) / total if total else 0.0

    @property
    def rtf(self) -> float:
        audio = sum(r.duration_s for r in self.results)
        return sum(r.decode_ms for r in self.results) / 1000.0 / audio if audio else 0.0

    def finish_percentile(self, q: float) -> float:
        return percentile([r.finish_ms for r in self.results], q)

    def summary(self) -> dict[str, Any]:
        return {
            "wer": round(self.wer, 4),
            "rtf": round(self.rtf, 4),
            "p50_ms": round(self.finish_percentile(50), 2),
            "p95_ms": round(self.finish_percentile(95), 2),
            "clips": len(self.results),
            "ref_words": sum(r.ref_words for r in self.results),
            "errors": sum(r.errors for r in self.results),
            "audio_s": round(sum(r.duration_s for r in self.results), 3),
        }


def decode(engine: Any, audio: Int16Array, chunk_ms: int = 20) -> tuple[str, float, float]:
    """Stream ``audio`` through one utterance of ``engine``.

    Returns:
        (hypothesis, total decode wall time in ms, finish() wall time in ms)
    """
    step = max(1, PIPELINE_SAMPLE_RATE_HZ * chunk_ms // 1000)
    t0 = time.perf_counter()
    stream = engine.open()
    for i in range(0, audio.size, step):
        stream.accept(audio[i : i + step])
    t1 = time.perf_counter()
    transcript = stream.finish()
    t2 = time.perf_counter()
    return transcript.text, (t2 - t0) * 1000.0, (t2 - t1) * 1000.0


def evaluate(engine: Any, clips: Sequence[Clip], chunk_ms: int = 20) -> Report:
    """Decode every clip and score it."""
    results = []
    for clip in clips:
        hyp, decode_ms, finish_ms = decode(engine, clip.audio, chunk_ms)
        ref_w, hyp_w = words(clip.reference), words(hyp)
        results.append(
            ClipResult(
                id=clip.id,
                duration_s=clip.duration_s,
                reference=clip.reference,
                hypothesis=hyp,
                errors=edit_distance(ref_w, hyp_w),
                ref_words=len(ref_w),
                decode_ms=decode_ms,
                finish_ms=finish_ms,
            )
        )
    return Report(results)


def add_noise(audio: Int16Array, noise_dbfs: float | None, seed: int = 0) -> Int16Array:
    """Mix in white noise at ``noise_dbfs`` RMS (None: unchanged)."""
    if noise_dbfs is None:
        return audio
    rng = np.random.default_rng(seed)
    sigma = 32768.0 * 10 ** (noise_dbfs / 20.0)
    noisy = audio.astype(np.float64) + rng.normal(0.0, sigma, audio.size)
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


def sentence_clips(
    sentences: Sequence[str],
    voice: str = "en-us",
    rate_wpm: int = 165,
    pitch: int = 50,
    prefix: str = "s",
    lead_ms: int | None = None,
    trail_ms: int | None = None,
) -> list[Clip]:
    """Speak each sentence with espeak-ng at 16 kHz, framed as the endpointer frames it.

    The endpointer hands the recogniser ``pre_roll_ms`` of audio before the speech and
    ``end_of_utterance_silence_ms`` after it; by default the clips get the same amount
    of silence around them (``lead_ms``/``trail_ms`` override).
    """
    from core.pipeline.vad import EndpointConfig
    from core.speech.tts.espeak import speak_16k

    cfg = EndpointConfig()
    lead = cfg.pre_roll_ms if lead_ms is None else lead_ms
    trail = cfg.end_of_utterance_silence_ms if trail_ms is None else trail_ms
    return [
        Clip(
            f"{prefix}{i:02d}",
            pad(speak_16k(s, voice=voice, rate_wpm=rate_wpm, pitch=pitch), lead, trail),
            s,
        )
        for i, s in enumerate(sentences, 1)
    ]


def piper_clips(sentences: Sequence[str], prefix: str = "p", lead_ms: int | None = None,
                trail_ms: int | None = None) -> list[Clip]:
    """The sentences spoken by the Piper voice at 16 kHz, framed like :func:`sentence_clips`."""
    from core.pipeline.vad import EndpointConfig
    from core.speech.tts.piper import speak_16k as piper_16k

    cfg = EndpointConfig()
    lead = cfg.pre_roll_ms if lead_ms is None else lead_ms
    trail = cfg.end_of_utterance_silence_ms if trail_ms is None else trail_ms
    return [Clip(f"{prefix}{i:02d}", pad(piper_16k(s), lead, trail), s) for i, s in enumerate(sentences, 1)]


def phone_line(audio: Int16Array) -> Int16Array:
    """``audio`` as a phone call carries it: 8 kHz mu-law, back at the pipeline rate."""
    from core.speech.audio import mulaw_decode, mulaw_encode, resample

    narrow = mulaw_decode(mulaw_encode(resample(audio, PIPELINE_SAMPLE_RATE_HZ, 8000)))
    return resample(narrow, 8000, PIPELINE_SAMPLE_RATE_HZ)


def make_neural_engine(partials: bool = False, vocabulary: bool = True, pack_dir: Path = DEFAULT_PACK) -> Any:
    """The product's embedded neural recogniser (Moonshine base) with the pack's KB
    vocabulary as the product uses it (``vocabulary=False``: without); partials off by
    default (an evaluation times the finals)."""
    from core.config import Settings
    from core.speech.stt.neural import build_moonshine

    settings = Settings(stt_partial_every_ms=700 if partials else 0, stt_vocabulary=vocabulary)
    texts, phrases = pack_texts(pack_dir) if vocabulary else ([], [])
    return build_moonshine(settings, [*texts, *phrases])


def write_hypotheses(path: Path, report: Report) -> None:
    """One ``id<TAB>hypothesis`` line per clip (tabs and newlines in text become spaces)."""
    lines = [f"{r.id}\t{' '.join(r.hypothesis.split())}" for r in report.results]
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")


def pack_texts(pack_dir: Path) -> tuple[list[str], list[str]]:
    """The LM text of a pack, composed exactly as the product composes it."""
    from core.kb.pack import load_pack

    pack = load_pack(pack_dir)
    return [f"{a.title}. {a.body}" for a in pack.articles], list(pack.phrases)


def default_cache_dir() -> Path:
    """The product's cache folder (built LMs go to its ``lm`` subfolder)."""
    from core.config import Settings

    return Settings().cache_dir


_DEFAULT_FLOOR = object()


def make_engine(
    lm: str,
    pack_dir: Path = DEFAULT_PACK,
    cache_dir: Path | None = None,
    decoder_options: dict[str, object] | None = None,
    noise_floor_dbfs: float | None | object = _DEFAULT_FLOOR,
) -> Any:
    """A :class:`PocketsphinxEngine` with the general or the pack's domain model.

    Built the way the product builds it (:func:`build_engine`); ``decoder_options`` and
    ``noise_floor_dbfs`` override the product's choices when given.
    """
    from core.speech.stt.pocketsphinx_build import build_engine
    from core.speech.stt.pocketsphinx_stt import PocketsphinxEngine

    if lm not in {"general", "domain"}:
        raise ValueError(f"unknown language model {lm!r}")
    texts, phrases = pack_texts(pack_dir) if lm == "domain" else ([], [])
    settings = argparse.Namespace(
        stt_language_model=lm, cache_dir=cache_dir or default_cache_dir(), pack_dir=pack_dir
    )
    engine = build_engine(settings, texts, phrases)
    if decoder_options or noise_floor_dbfs is not _DEFAULT_FLOOR:
        engine = PocketsphinxEngine(
            engine.lm_path,
            engine.dict_path,
            {**engine.decoder_options, **(decoder_options or {})},
            noise_floor_dbfs=(
                engine.noise_floor_dbfs if noise_floor_dbfs is _DEFAULT_FLOOR else noise_floor_dbfs
            ),
        )
    return engine


def pad(audio: Int16Array, lead_ms: int, trail_ms: int) -> Int16Array:
    """Surround ``audio`` with digital silence."""
    rate = PIPELINE_SAMPLE_RATE_HZ
    return np.concatenate(
        [np.zeros(rate * lead_ms // 1000, np.int16), audio, np.zeros(rate * trail_ms // 1000, np.int16)]
    )


def _floor(text: str) -> float | None:
    return None if text.lower() in {"none", "off"} else float(text)


def _parse_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    for cast in (int, float):
        try:
            return name, cast(value)
        except ValueError:
            pass
    if value.lower() in {"true", "false"}:
        return name, value.lower() == "true"
    return name, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--manifest", type=Path, help=f"references.tsv (default {DEFAULT_MANIFEST})")
    src.add_argument("--sentences", type=Path, help="text file, one sentence per line, spoken by espeak-ng")
    parser.add_argument("--engine", choices=("moonshine", "pocketsphinx"), default="moonshine",
                        help="recogniser (default: moonshine, the product's embedded default)")
    parser.add_argument(
        "--lm",
        choices=("general", "domain"),
        default="domain",
        help="pocketsphinx language model (default: domain, as the product)",
    )
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK, help="pack whose KB builds the domain LM")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (LMs go to its lm/ subfolder; default: the product's)",
    )
    parser.add_argument("--chunk-ms", type=int, default=20, help="accept() chunk size (default 20)")
    parser.add_argument("--voice", default="en-us",
                        help="voice for --sentences: piper, or an espeak-ng voice (default en-us)")
    parser.add_argument("--phone", action="store_true", help="pass the audio through an 8 kHz mu-law line")
    parser.add_argument("--no-vocabulary", action="store_true",
                        help="moonshine without the KB vocabulary (--pack's texts by default, as the product)")
    parser.add_argument("--non-speech", type=float, default=None, metavar="SECONDS",
                        help="instead: count the words the endpointer and recogniser emit on SECONDS each "
                        "of silence, white noise, hum, babble, DTMF and music")
    parser.add_argument("--hypotheses", type=Path, default=None, metavar="OUT.tsv",
                        help="also write one id<TAB>hypothesis line per clip")
    parser.add_argument("--rate", type=int, default=165, help="espeak-ng words per minute")
    parser.add_argument("--pitch", type=int, default=50, help="espeak-ng pitch 0-99")
    parser.add_argument("--noise-dbfs", type=float, default=None,
                        help="add white noise at this level to the test audio")
    parser.add_argument("--noise-floor-dbfs", type=_floor, default=_DEFAULT_FLOOR, metavar="DBFS|none",
                        help="override the engine's noise floor (default: the product's, -65)")
    parser.add_argument("--no-pad", action="store_true",
                        help="--sentences: no pre-roll/end silence around each sentence")
    parser.add_argument(
        "--decoder",
        type=_parse_option,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a pocketsphinx decoder parameter, e.g. --decoder lw=8 (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")


def run_non_speech(args: argparse.Namespace, engine: Any) -> int:
    from core.config import Settings
    from core.eval.noise import words_on_non_speech
    from core.pipeline.vad import make_endpointer

    settings = Settings()
    found = words_on_non_speech(engine, args.non_speech, lambda: make_endpointer(settings))
    rows = [(name, str(sum(len(words(t)) for t in texts)), " | ".join(texts)[:80]) for name, texts in found.items()]
    print(format_table(("condition", "words", "text"), rows))
    total = sum(int(r[1]) for r in rows)
    print(f"\n{args.engine} | {args.non_speech:.0f} s of each | {total} words emitted in all")
    if args.json:
        print(json_line({"engine": args.engine, "seconds": args.non_speech, "words": total,
                         "per_condition": {k: v for k, v in found.items()}}))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.non_speech is not None:
        engine = (make_neural_engine(vocabulary=not args.no_vocabulary, pack_dir=args.pack)
                  if args.engine == "moonshine" else make_engine(args.lm, args.pack, args.cache_dir))
        return run_non_speech(args, engine)
    if args.sentences is not None:
        pad_ms = {"lead_ms": 0, "trail_ms": 0} if args.no_pad else {}
        lines = read_lines(args.sentences)
        if args.voice == "piper":
            clips = piper_clips(lines, **pad_ms)
        else:
            clips = sentence_clips(lines, args.voice, args.rate, args.pitch, **pad_ms)
        source = str(args.sentences)
    else:
        manifest = args.manifest or DEFAULT_MANIFEST
        if not manifest.exists():
            print(f"manifest {manifest} not found", file=sys.stderr)
            return 2
        clips = load_manifest(manifest)
        source = str(manifest)
    if args.noise_dbfs is not None:
        clips = [Clip(c.id, add_noise(c.audio, args.noise_dbfs, i), c.reference) for i, c in enumerate(clips)]
    if args.phone:
        clips = [Clip(c.id, phone_line(c.audio), c.reference) for c in clips]
    options = dict(args.decoder)
    if args.engine == "moonshine":
        engine = make_neural_engine(vocabulary=not args.no_vocabulary, pack_dir=args.pack)
    else:
        engine = make_engine(args.lm, args.pack, args.cache_dir, options or None, args.noise_floor_dbfs)
    report = evaluate(engine, clips, args.chunk_ms)
    if args.hypotheses is not None:
        write_hypotheses(args.hypotheses, report)

    rows = [(r.id, f"{r.duration_s:.2f}", r.reference, r.hypothesis, f"{r.wer:.2f}") for r in report.results]
    print(format_table(("id", "dur_s", "reference", "hypothesis", "wer"), rows))
    s = report.summary()
    print(
        f"\n{source} | {args.engine}{'' if args.engine == 'moonshine' else ' lm=' + args.lm}"
        f"{' | 8 kHz mu-law' if args.phone else ''} | {s['clips']} clips, {s['audio_s']:.1f} s audio, "
        f"{s['ref_words']} words\n"
        f"WER {s['wer']:.3f} ({s['errors']} errors)  RTF {s['rtf']:.3f}  "
        f"finish() p50 {s['p50_ms']:.1f} ms  p95 {s['p95_ms']:.1f} ms"
    )
    if args.json:
        out = {
            **s,
            "engine": args.engine,
            "lm": args.lm,
            "phone": args.phone,
            "source": source,
            "decoder": options,
            "per_clip": [{**asdict(r), "wer": round(r.wer, 4)} for r in report.results],
        }
        print(json_line(out))
    return 0
