"""Offline streaming STT with pocketsphinx 5.

One decoder per utterance stream would cost ~100 ms to build, so each engine keeps a
small pool of decoders (a decoder is not thread-safe; a stream holds one exclusively).
Partial hypotheses come from the decoder's running best path.

Before decoding, a fixed low-level noise floor (white, -65 dBFS by default) is mixed
into the audio. The acoustic model was trained on recordings that always have some
noise; digitally clean input (synthetic speech, browser noise suppression gating to
zeros) has spectral valleys no training frame had, and recognition collapses on it.
Measured (``docs/speech.md``): on the real dev clips the floor lowers WER slightly
(it is below their own noise), on espeak speech it cuts WER from 0.56 to 0.35.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from core.language.text import clean_hypothesis
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.speech.stt import STTError, Transcript

log = logging.getLogger(__name__)

NOISE_FLOOR_DBFS = -65.0
# Decoder parameters changed from pocketsphinx's defaults, chosen by measurement
# (docs/speech.md). Skipping the second, flat-lexicon pass cuts the time finish() takes
# from ~140 ms to ~20 ms (p50) and the CPU by ~30%, with equal or lower WER. Capping the
# active HMMs and word exits per frame, a narrower last-phone beam and a 3-frame phone
# lookahead cut decoding CPU by another ~20% (domain LM; ~50% with the general one) and
# finish() to ~4 ms, with WER within noise on every held-out set.
DECODER_DEFAULTS: dict[str, object] = {
    "fwdflat": False,
    "maxhmmpf": 3000,
    "maxwpf": 10,
    "lpbeam": 1e-30,
    "pl_window": 3,
}
# Decoders kept for reuse. Making one loads the acoustic model and the LM: ~300 ms during
# which pocketsphinx holds the GIL and every session in the process stalls (measured by
# core.bench.concurrency); one costs ~3 MB, so keep as many as calls ever spoke at once.
MAX_POOLED_DECODERS = 64
_NOISE_SEED = 16_000  # fixed: the same audio always decodes to the same text


class PocketsphinxEngine:
    """Factory of utterance streams sharing one model configuration."""

    name = "pocketsphinx"

    def __init__(
        self,
        lm_path: Path | None = None,
        dict_path: Path | None = None,
        decoder_options: dict[str, object] | None = None,
        noise_floor_dbfs: float | None = NOISE_FLOOR_DBFS,
    ):
        """
        Args:
            lm_path, dict_path: language model and dictionary (None: the general en-US ones).
            decoder_options: pocketsphinx parameters on top of ``DECODER_DEFAULTS``
                (e.g. ``{"lw": 8.0}``).
            noise_floor_dbfs: RMS level of the white noise mixed in before decoding;
                None disables it.
        """
        self._lm_path = lm_path
        self._dict_path = dict_path
        self.decoder_options: dict[str, object] = {**DECODER_DEFAULTS, **(decoder_options or {})}
        self.noise_floor_dbfs = noise_floor_dbfs
        self._pool: list[object] = []
        self._lock = threading.Lock()
        self._pool.append(self._new_decoder())  # fail at start-up, not mid-call

    def _new_decoder(self) -> object:
        import pocketsphinx

        kwargs: dict[str, object] = {"samprate": PIPELINE_SAMPLE_RATE_HZ, "loglevel": "FATAL"}
        if self._lm_path is not None:
            kwargs["lm"] = str(self._lm_path)
        if self._dict_path is not None:
            kwargs["dict"] = str(self._dict_path)
        kwargs.update(self.decoder_options)
        try:
            return pocketsphinx.Decoder(**kwargs)
        except Exception as exc:
            raise STTError(f"pocketsphinx could not load its model: {exc}") from exc

    def _acquire(self) -> object:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self._new_decoder()

    def _release(self, decoder: object) -> None:
        with self._lock:
            if len(self._pool) < MAX_POOLED_DECODERS:
                self._pool.append(decoder)

    @property
    def lm_path(self) -> Path | None:
        return self._lm_path

    @property
    def dict_path(self) -> Path | None:
        return self._dict_path

    def open(self) -> PocketsphinxStream:
        return PocketsphinxStream(self)


class PocketsphinxStream:
    """One utterance being decoded incrementally."""

    def __init__(self, engine: PocketsphinxEngine):
        self._engine = engine
        self._decoder = engine._acquire()
        self._decoder.start_utt()  # type: ignore[attr-defined]
        self._cpu_s = 0.0
        self._samples = 0
        self._closed = False
        level = engine.noise_floor_dbfs
        self._noise_sigma = None if level is None else 32768.0 * 10.0 ** (level / 20.0)
        self._rng = np.random.default_rng(_NOISE_SEED)

    def _with_floor(self, samples: Int16Array) -> Int16Array:
        if self._noise_sigma is None or samples.size == 0:
            return samples
        noisy = samples.astype(np.float32) + self._rng.normal(
            0.0, self._noise_sigma, samples.size
        ).astype(np.float32)
        return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)

    def accept(self, samples: Int16Array) -> None:
        if self._closed:
            raise STTError("utterance stream already closed")
        t = time.perf_counter()
        try:
            audio = self._with_floor(np.asarray(samples, dtype=np.int16))
            self._decoder.process_raw(audio.astype("<i2", copy=False).tobytes(), False, False)  # type: ignore[attr-defined]
        except Exception as exc:
            raise STTError(f"decoding failed: {exc}") from exc
        self._cpu_s += time.perf_counter() - t
        self._samples += samples.size

    def partial(self) -> str:
        if self._closed:
            return ""
        hyp = self._decoder.hyp()  # type: ignore[attr-defined]
        return clean_hypothesis(hyp.hypstr) if hyp is not None else ""

    def finish(self, speech_end_ms: float | None = None) -> Transcript:
        if self._closed:
            raise STTError("utterance stream already closed")
        t = time.perf_counter()
        decoder = self._decoder
        try:
            running = decoder.hyp()  # type: ignore[attr-defined]
            decoder.end_utt()  # type: ignore[attr-defined]
            hyp = decoder.hyp()  # type: ignore[attr-defined]
            text = clean_hypothesis(hyp.hypstr) if hyp is not None else ""
            if not text and running is not None:
                # Audio cut off mid-word (a forced close at the length limit, a hang-up)
                # can leave the final search without a word ending at the last frame; it
                # then returns nothing although words were recognised. Keep those.
                text = clean_hypothesis(running.hypstr)
            # pocketsphinx only reports posteriors after a lattice search it does not
            # run in streaming mode; report no confidence rather than a constant.
            confidence = None
        except Exception as exc:
            raise STTError(f"decoding failed: {exc}") from exc
        finally:
            self._closed = True
            self._engine._release(decoder)
        self._cpu_s += time.perf_counter() - t
        return Transcript(
            text=text,
            confidence=confidence,
            decode_ms=self._cpu_s * 1000.0,
            audio_ms=self._samples * 1000.0 / PIPELINE_SAMPLE_RATE_HZ,
        )

    def cancel(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._decoder.end_utt()  # type: ignore[attr-defined]
        finally:
            self._engine._release(self._decoder)
