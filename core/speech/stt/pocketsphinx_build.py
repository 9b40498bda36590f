"""The pocketsphinx engine as the product builds it: its domain language model, in-process
or in worker processes (:mod:`core.speech.stt.process_pool`)."""

from __future__ import annotations

import logging
from pathlib import Path

from core.speech.stt import STTEngine
from core.speech.stt.domain_lm import build_domain_model
from core.speech.stt.pocketsphinx_stt import NOISE_FLOOR_DBFS, PocketsphinxEngine
from core.speech.stt.process_pool import ProcessPoolEngine

log = logging.getLogger(__name__)


def _intent_examples(pack_dir: object) -> list[str]:
    """Caller-style example utterances of the pack's intents (empty if unavailable)."""
    if pack_dir is None:
        return []
    try:
        from core.kb.pack import load_pack

        pack = load_pack(Path(str(pack_dir)))
    except Exception as exc:  # the LM can be built without them
        log.warning("intent examples not used for the language model: %s", exc)
        return []
    return [str(e) for intent in pack.intents for e in (intent.get("examples") or [])]


def build_engine(settings: object, texts: list[str], phrases: list[str]) -> STTEngine:
    """The offline engine configured per settings (domain or general language model).

    The domain model is built from ``texts`` (KB prose), ``phrases`` and the example
    utterances of the intents of ``settings.pack_dir`` (caller-style text, weighted up).
    With ``settings.stt_workers`` above 0 the engine decodes in that many worker processes
    (:mod:`core.speech.stt.process_pool`), from the same files.
    """
    floor = getattr(settings, "stt_noise_floor_dbfs", NOISE_FLOOR_DBFS)
    if settings.stt_language_model == "general":
        return _engine(settings, None, None, floor)
    examples = _intent_examples(getattr(settings, "pack_dir", None))
    seen = set(phrases)
    caller_lines = [*phrases, *(e for e in examples if e not in seen)]
    model = build_domain_model(texts, caller_lines, Path(settings.cache_dir) / "lm")
    return _engine(settings, model.lm_path, model.dict_path, floor)


def _engine(settings: object, lm_path: Path | None, dict_path: Path | None, floor: float | None) -> STTEngine:
    """In-process, or in ``settings.stt_workers`` worker processes when that is above 0."""
    workers = int(getattr(settings, "stt_workers", 0) or 0)
    if workers > 0:
        return ProcessPoolEngine(lm_path, dict_path, noise_floor_dbfs=floor, workers=workers)
    return PocketsphinxEngine(lm_path, dict_path, noise_floor_dbfs=floor)
