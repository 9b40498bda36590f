"""Offline streaming STT with pocketsphinx 5.

One decoder per utterance stream would cost ~100 ms to build, so each engine keeps a
small pool of decoders (a decoder is not thread-safe; a stream holds one exclusively).
Partial hypotheses come from the decoder's running best path.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from core.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array
from core.stt import STTError, Transcript
from core.text import clean_hypothesis

log = logging.getLogger(__name__)


class PocketsphinxEngine:
    """Factory of utterance streams sharing one model configuration."""

    name = "pocketsphinx"

    def __init__(
        self,
        lm_path: Path | None = None,
        dict_path: Path | None = None,
        decoder_options: dict[str, object] | None = None,
    ):
        self._lm_path = lm_path
        self._dict_path = dict_path
        self.decoder_options: dict[str, object] = dict(decoder_options or {})
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
            if len(self._pool) < 8:
                self._pool.append(decoder)

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

    def accept(self, samples: Int16Array) -> None:
        if self._closed:
            raise STTError("utterance stream already closed")
        t = time.perf_counter()
        try:
            self._decoder.process_raw(samples.astype("<i2", copy=False).tobytes(), False, False)  # type: ignore[attr-defined]
        except Exception as exc:
            raise STTError(f"decoding failed: {exc}") from exc
        self._cpu_s += time.perf_counter() - t
        self._samples += samples.size

    def partial(self) -> str:
        if self._closed:
            return ""
        hyp = self._decoder.hyp()  # type: ignore[attr-defined]
        return clean_hypothesis(hyp.hypstr) if hyp is not None else ""

    def finish(self) -> Transcript:
        if self._closed:
            raise STTError("utterance stream already closed")
        t = time.perf_counter()
        decoder = self._decoder
        try:
            decoder.end_utt()  # type: ignore[attr-defined]
            hyp = decoder.hyp()  # type: ignore[attr-defined]
            text = clean_hypothesis(hyp.hypstr) if hyp is not None else ""
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


def build_engine(settings: object, texts: list[str], phrases: list[str]) -> PocketsphinxEngine:
    """The offline engine configured per settings (domain or general language model)."""
    if getattr(settings, "stt_language_model") == "general":
        return PocketsphinxEngine()
    from core.stt.domain_lm import build_domain_model

    model = build_domain_model(texts, phrases, Path(getattr(settings, "cache_dir")) / "lm")
    return PocketsphinxEngine(model.lm_path, model.dict_path)
