"""Which adapter serves which provider name, and the fallback chain built per stage.

Each stage has a table ``provider name → factory(settings, pack, kb)``. A new adapter
plugs in with one line, e.g. ``STT_FACTORIES["deepgram"] = deepgram_stt.from_settings``
(or ``TTS_FACTORIES["elevenlabs"] = elevenlabs_tts.from_settings``). The chains end at
the offline provider, which the caller passes in: it is built the way it always was.

Breakers live in one process-wide :class:`~core.resilience.BreakerRegistry` built from
the ``VC_BREAKER_*`` settings, so every call sees a provider's outage at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from core.config import Settings
from core.conversation.reply import Responder
from core.kb import KBSearch
from core.kb.pack import Pack
from core.resilience import (
    BreakerConfig,
    BreakerRegistry,
    Chain,
    FallbackResponder,
    FallbackSTT,
    FallbackTTS,
    RetryPolicy,
)
from core.resilience.observe import Stage

log = logging.getLogger(__name__)
Factory = Callable[[Settings, Pack | None, KBSearch | None], Any]
MS_PER_S = 1000.0
# The SDK's own request timeout: the stage budget bounds the wait for the first token,
# the timeout bounds a stalled stream after it.
REQUEST_TIMEOUT_FACTOR = 2.0


def _openai_backend(settings: Settings) -> Any:
    from core.providers.openai_llm import OpenAIBackend

    return OpenAIBackend(
        settings.openai_api_key or "", settings.openai_model, settings.openai_base_url,
        timeout_s=settings.llm_budget_ms / MS_PER_S * REQUEST_TIMEOUT_FACTOR,
    )


def _gemini_backend(settings: Settings) -> Any:
    from core.providers.gemini_llm import GeminiBackend

    return GeminiBackend(
        settings.gemini_api_key or "", settings.gemini_model, settings.gemini_base_url,
        timeout_s=settings.llm_budget_ms / MS_PER_S * REQUEST_TIMEOUT_FACTOR,
    )


BACKENDS: dict[str, Callable[[Settings], Any]] = {"openai": _openai_backend, "gemini": _gemini_backend}


def _llm_responder(name: str) -> Factory:
    def build(settings: Settings, pack: Pack | None, kb: KBSearch | None) -> Responder:
        from core.providers.llm import LLMResponder

        assert pack is not None and kb is not None, "an LLM responder speaks for a pack, from its KB"
        return LLMResponder(BACKENDS[name](settings), pack, kb)

    return build


def _whisper(settings: Settings, pack: Pack | None = None, kb: KBSearch | None = None) -> Any:
    from core.providers.whisper_stt import WhisperSTT

    return WhisperSTT(
        settings.openai_api_key or "", settings.openai_stt_model, settings.openai_base_url,
        timeout_s=settings.stt_budget_ms / MS_PER_S,
    )


def _deepgram(settings: Settings, pack: Pack | None = None, kb: KBSearch | None = None) -> Any:
    from core.providers.deepgram_stt import build_deepgram_stt

    vocabulary = [*pack.phrases, *(a.title for a in pack.articles)] if pack is not None else []
    return build_deepgram_stt(settings, vocabulary)


def _moonshine(settings: Settings, pack: Pack | None = None, kb: KBSearch | None = None) -> Any:
    from core.speech.stt.neural import build_moonshine

    return build_moonshine(settings)  # its KB vocabulary is set by core.providers.speech.build_speech


def _piper(settings: Settings, pack: Pack | None = None, kb: KBSearch | None = None) -> Any:
    from core.speech.tts.piper import PiperTTS

    return PiperTTS(length_scale=settings.tts_piper_length_scale)


def _elevenlabs(settings: Settings, pack: Pack | None = None, kb: KBSearch | None = None) -> Any:
    from core.providers.elevenlabs_tts import build_elevenlabs_tts

    return build_elevenlabs_tts(settings)


LLM_FACTORIES: dict[str, Factory] = {"openai": _llm_responder("openai"), "gemini": _llm_responder("gemini")}
STT_FACTORIES: dict[str, Factory] = {"whisper": _whisper, "deepgram": _deepgram, "moonshine": _moonshine}
# Embedded engines every chain of a stage passes through before its floor (in order).
OFFLINE_STEPS: dict[Stage, tuple[str, ...]] = {"stt": ("moonshine",), "llm": (), "tts": ("piper",)}
TTS_FACTORIES: dict[str, Factory] = {"elevenlabs": _elevenlabs, "piper": _piper}
FACTORIES: dict[Stage, dict[str, Factory]] = {"llm": LLM_FACTORIES, "stt": STT_FACTORIES, "tts": TTS_FACTORIES}
SETTING_OF_STAGE: dict[Stage, str] = {"llm": "llm_provider", "stt": "stt_provider", "tts": "tts_provider"}
KEY_OF_PROVIDER = {"openai": "openai_api_key", "whisper": "openai_api_key", "gemini": "gemini_api_key",
                   "deepgram": "deepgram_api_key", "elevenlabs": "elevenlabs_api_key"}

_registries: dict[BreakerConfig, BreakerRegistry] = {}
_registries_lock = threading.Lock()


def breaker_registry(settings: Settings) -> BreakerRegistry:
    """The process-wide breakers for these settings' thresholds."""
    config = BreakerConfig(
        settings.breaker_failure_threshold, settings.breaker_open_s, settings.breaker_half_open_probes
    )
    with _registries_lock:
        if config not in _registries:
            _registries[config] = BreakerRegistry(config)
        return _registries[config]


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        settings.retry_max_attempts, settings.retry_base_delay_ms / MS_PER_S, settings.retry_max_delay_ms / MS_PER_S
    )


def supported(stage: str, provider: str) -> bool:
    """Whether an adapter for ``provider`` is registered for ``stage`` (False for other stages)."""
    return stage in FACTORIES and provider in FACTORIES[stage]  # type: ignore[index]


def chain_names(settings: Settings, stage: Stage) -> list[str]:
    """The providers of a stage before its floor, in order: the chosen one, then (LLM)
    ``VC_LLM_FALLBACKS``, then the embedded engines of :data:`OFFLINE_STEPS` (moonshine, piper).

    A fallback without its key, or without an adapter, is left out with a warning.
    """
    primary = getattr(settings, SETTING_OF_STAGE[stage])
    names = [primary] if supported(stage, primary) else []
    if stage == "llm":
        for name in (n.strip() for n in settings.llm_fallbacks.split(",") if n.strip()):
            if name in names or name == "embedded":
                continue
            key = KEY_OF_PROVIDER.get(name)
            if not supported(stage, name) or (key and not getattr(settings, key)):
                log.warning("LLM fallback skipped: no adapter or no key", extra={"provider": name})
                continue
            names.append(name)
    if names:  # a chosen engine fails over to the embedded ones before the floor
        names += [n for n in OFFLINE_STEPS[stage] if n not in names]
    return names


def build_chain(
    settings: Settings, stage: Stage, floor: Any, pack: Pack | None, kb: KBSearch | None = None,
    registry: BreakerRegistry | None = None,
) -> Any:
    """``floor`` alone for the offline choice, else a Fallback* wrapper ending at it.

    Args:
        settings: providers, keys, budgets, breaker and retry settings.
        stage: ``"llm"``, ``"stt"`` or ``"tts"``.
        floor: the offline provider (embedded responder, pocketsphinx, espeak).
        pack: the domain pack (persona, labels).
        kb: the KB search (LLM replies retrieve from it).
        registry: breakers (default: the process-wide registry for these settings).
    """
    names = chain_names(settings, stage)
    if not names:
        return floor
    engines = [FACTORIES[stage][name](settings, pack, kb) for name in names] + [floor]
    budget_s = getattr(settings, f"{stage}_budget_ms") / MS_PER_S
    chain: Chain[Any] = Chain(
        stage, engines, registry or breaker_registry(settings), retry_policy(settings), budget_s
    )
    wrapper = {"llm": FallbackResponder, "stt": FallbackSTT, "tts": FallbackTTS}[stage]
    return wrapper(chain)


def build_analyst(settings: Settings, pack: Pack, intent: Callable[[], Any], registry: BreakerRegistry | None = None) -> Any:
    """Intent, disposition and summary: the chosen LLM's, failing over to the embedded models.

    Args:
        settings: the LLM choice, budget, retry and breaker settings.
        pack: intents and dispositions (the labels the answers must use).
        intent: returns the offline intent model (``predict(text)``), called on first use.
        registry: breakers (default: the process-wide registry; shared with replies).
    """
    from core.resilience.analysis import EmbeddedAnalyst, FallbackAnalyst

    floor = EmbeddedAnalyst(intent, pack.dispositions)
    names = [n for n in chain_names(settings, "llm") if n in BACKENDS]
    if not names:
        return floor
    from core.providers.llm import LLMAnalyst

    engines = [LLMAnalyst(BACKENDS[n](settings), pack) for n in names] + [floor]
    chain: Chain[Any] = Chain(
        "llm", engines, registry or breaker_registry(settings), retry_policy(settings),
        settings.llm_budget_ms / MS_PER_S,
    )
    return FallbackAnalyst(chain)


def _probe_backend(name: str) -> Callable[[Settings, float], str]:
    return lambda settings, timeout_s: str(BACKENDS[name](settings).probe(timeout_s))


# provider → cheap health check (list models); adapters add theirs with one line.
PROBES: dict[str, Callable[[Settings, float], str]] = {
    "openai": _probe_backend("openai"),
    "gemini": _probe_backend("gemini"),
    "whisper": lambda settings, timeout_s: str(_whisper(settings).probe(timeout_s)),
}


def probe(settings: Settings, provider: str) -> str:
    """A cheap authenticated request to ``provider``, bounded by ``VC_HEALTH_PROBE_TIMEOUT_S``.

    Returns:
        What the provider answered (e.g. how many models it lists), or that no check
        is registered for it (offline providers need none).

    Raises:
        ProviderError: unreachable, or the key is refused.
    """
    check = PROBES.get(provider)
    if check is None:
        return f"no health check registered for {provider}"
    return check(settings, settings.health_probe_timeout_s)
