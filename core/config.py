"""One settings object for the whole product.

Values come from, in order of precedence: keyword arguments (the app layer passes
``st.secrets`` this way), environment variables, then a ``.env`` file. Every name is
prefixed ``VC_`` except provider keys, which keep the names their vendors document
(``DEEPGRAM_API_KEY``, ``OPENAI_API_KEY`` ...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

STTProvider = Literal["moonshine", "pocketsphinx", "deepgram", "whisper"]
LLMProvider = Literal["embedded", "openai", "gemini"]
TTSProvider = Literal["piper", "espeak", "elevenlabs"]
StoreProvider = Literal["sqlite", "postgres"]

# Which environment variable each cloud provider needs. Checked at start-up.
REQUIRED_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("stt_provider", "deepgram"): ("DEEPGRAM_API_KEY",),
    ("stt_provider", "whisper"): ("OPENAI_API_KEY",),
    ("llm_provider", "openai"): ("OPENAI_API_KEY",),
    ("llm_provider", "gemini"): ("GEMINI_API_KEY",),
    ("tts_provider", "elevenlabs"): ("ELEVENLABS_API_KEY",),
    ("store_provider", "postgres"): ("DATABASE_URL",),
}


# List prices (USD) at the time of writing for the default models of each provider:
# Deepgram Nova-3 streaming, OpenAI Whisper and GPT-4o mini, Gemini 2.0 Flash,
# ElevenLabs Flash/Turbo. Embedded providers cost nothing. Override with VC_PRICES (JSON).
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "moonshine": {"stt_per_min": 0.0},
    "pocketsphinx": {"stt_per_min": 0.0},
    "embedded": {"llm_input_per_1m_tokens": 0.0, "llm_output_per_1m_tokens": 0.0},
    "piper": {"tts_per_1k_chars": 0.0},
    "espeak": {"tts_per_1k_chars": 0.0},
    "deepgram": {"stt_per_min": 0.0077},
    "whisper": {"stt_per_min": 0.006},
    "openai": {"llm_input_per_1m_tokens": 0.15, "llm_output_per_1m_tokens": 0.60},
    "gemini": {"llm_input_per_1m_tokens": 0.10, "llm_output_per_1m_tokens": 0.40},
    "elevenlabs": {"tts_per_1k_chars": 0.05},
}


class ConfigError(ValueError):
    """The configuration cannot run the product; the message says what to set."""


class Settings(BaseSettings):
    """Effective configuration of one Voice Copilot process."""

    model_config = SettingsConfigDict(
        env_prefix="VC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- where things live -------------------------------------------------------
    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="SQLite file, caches")
    pack_dir: Path = Field(default=PROJECT_ROOT / "packs" / "bank", description="Domain pack")

    # --- providers per stage ----------------------------------------------------
    stt_provider: STTProvider = Field(
        default="moonshine",
        description="moonshine (embedded neural), pocketsphinx (embedded, light), deepgram, whisper; "
        "every chain ends at moonshine then pocketsphinx",
    )
    llm_provider: LLMProvider = "embedded"
    tts_provider: TTSProvider = Field(
        default="piper", description="piper (embedded neural voice), espeak (embedded), elevenlabs"
    )
    store_provider: StoreProvider = "sqlite"

    # --- provider keys (vendor names, no prefix) --------------------------------
    deepgram_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("DEEPGRAM_API_KEY", "deepgram_api_key")
    )
    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    gemini_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY", "gemini_api_key"),
    )
    elevenlabs_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ELEVENLABS_API_KEY", "elevenlabs_api_key"),
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    sentry_dsn: str | None = Field(
        default=None, validation_alias=AliasChoices("SENTRY_DSN", "sentry_dsn")
    )
    sentry_traces_sample_rate: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of calls whose stage timings go to Sentry"
    )

    # --- Supabase knowledge base import (VC_KB_SUPABASE_* name the table and columns) ---
    supabase_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SUPABASE_URL", "supabase_url")
    )
    supabase_service_role_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SUPABASE_SERVICE_ROLE_KEY", "supabase_service_role_key"),
    )
    kb_image_hosts: str = Field(
        default="",
        description="Hosts KB articles may show images from, comma-separated (e.g. cdn.example.com); "
        "empty: article images are shown as their description and never fetched",
    )
    kb_supabase_table: str = "kb_articles"
    kb_supabase_id_column: str = "id"
    kb_supabase_title_column: str = "title"
    kb_supabase_body_column: str = Field(default="body", description="e.g. body or content")
    kb_supabase_tags_column: str = Field(default="tags", description="empty: the table has none")
    kb_supabase_category_column: str = Field(default="", description="empty: the table has none")

    # --- cloud providers: endpoints, models, resilience -------------------------
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"),
        description="OpenAI-compatible endpoint (default: the SDK's own)",
    )
    openai_model: str = "gpt-4o-mini"
    openai_stt_model: str = "whisper-1"
    gemini_base_url: str | None = Field(default=None, description="Gemini endpoint (tests, proxies)")
    gemini_model: str = "gemini-2.5-flash"
    llm_fallbacks: str = Field(
        default="", description="Comma-separated LLM providers tried before the embedded one"
    )
    stt_budget_ms: int = Field(default=4000, ge=200, le=60000, description="Transcript wait per utterance")
    llm_budget_ms: int = Field(default=4000, ge=200, le=60000, description="First reply token per turn")
    tts_budget_ms: int = Field(default=3000, ge=200, le=60000, description="First audio per piece")
    retry_max_attempts: int = Field(default=3, ge=1, le=10, description="Tries per provider per request")
    retry_base_delay_ms: int = Field(default=200, ge=0, le=10000)
    retry_max_delay_ms: int = Field(default=2000, ge=0, le=60000)
    breaker_failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that open a provider's circuit"
    )
    breaker_open_s: float = Field(default=30.0, ge=0.0, le=3600.0, description="Open before a probe")
    breaker_half_open_probes: int = Field(
        default=1, ge=1, le=10, description="Successful probes that close the circuit again"
    )
    health_probe_timeout_s: float = Field(default=5.0, ge=0.5, le=60.0)

    # --- voice activity / end of utterance --------------------------------------
    vad_mode: int = Field(default=3, ge=0, le=3, description="VAD aggressiveness 0-3")
    vad_speech_threshold_db: float = Field(
        default=-60.0, description="Frames quieter than this (dBFS) are never speech"
    )
    vad_snr_gate_db: float = Field(
        default=6.0, ge=0.0, le=40.0, description="Speech must be this far above the noise floor"
    )
    end_of_utterance_silence_ms: int = Field(default=500, ge=100, le=5000)
    min_speech_ms: int = Field(default=200, ge=30, le=5000)
    max_utterance_ms: int = Field(default=15000, ge=1000, le=120000)
    speech_start_ms: int = Field(
        default=90, ge=30, le=1000, description="Voiced audio needed to open an utterance"
    )
    pre_roll_ms: int = Field(default=300, ge=0, le=2000)

    # --- speech to text ---------------------------------------------------------
    stt_language_model: Literal["domain", "general"] = "domain"
    partial_interval_ms: int = Field(default=200, ge=50, le=2000)
    stt_workers: int = Field(
        default=0, ge=0, le=64,
        description="Offline STT worker processes (decoding off the app's interpreter lock); 0 decodes in-process",
    )
    stt_decode_threads: int = Field(
        default=0, ge=0, le=64,
        description="Threads decoding with the neural recogniser, shared by all calls; 0: one per core",
    )
    stt_partial_every_ms: int = Field(
        default=700, ge=0, le=10000,
        description="New audio between two partial decodes of the neural recogniser (0: no partials); "
        "partials are only decoded when a decode thread is free",
    )
    stt_vocabulary: bool = Field(
        default=True, description="The neural recogniser favours the KB's words (docs/speech.md)"
    )
    stt_noise_floor_dbfs: float = Field(
        default=-65.0, le=-30.0, description="White noise mixed in before decoding (stabilises CMN)"
    )

    pii_redaction: bool = Field(
        default=True, description="Redact card/account/phone numbers, emails, national ids"
    )
    intent_encoder: Path | None = Field(
        default=None,
        description="Folder of an intent encoder fine-tuned by `python -m core.intent_tuning`; unset: MiniLM as shipped",
    )

    # --- cloud speech: Deepgram (STT) and ElevenLabs (TTS) ------------------------
    deepgram_model: str = Field(default="nova-3", description="Deepgram streaming model")
    deepgram_language: str = Field(default="en", description="Deepgram language code")
    deepgram_endpointing_ms: int = Field(
        default=300, ge=10, le=5000, description="Silence after which Deepgram finalises a segment"
    )
    deepgram_base_url: str | None = Field(
        default=None, description="Deepgram websocket base (wss://...); unset: Deepgram's own"
    )
    elevenlabs_voice_id: str = Field(
        default="21m00Tcm4TlvDq8ikWAM", description="ElevenLabs voice id (default: Rachel)"
    )
    elevenlabs_model: str = Field(default="eleven_flash_v2_5", description="ElevenLabs model id")
    elevenlabs_base_url: str | None = Field(
        default=None, description="ElevenLabs API base (https://...); unset: ElevenLabs' own"
    )

    # --- voice agent ------------------------------------------------------------
    tts_voice: str = "en-us"
    tts_rate_wpm: int = Field(default=170, ge=80, le=450, description="espeak-ng's speaking rate")
    tts_piper_length_scale: float | None = Field(
        default=None, ge=0.5, le=2.0, description="Piper's speaking rate (above 1 slower; unset: the voice's own)"
    )
    barge_in_min_words: int = Field(
        default=2, ge=1, le=10, description="Caller words (not backchannels) that interrupt the agent"
    )
    preemptive_reply: bool = Field(
        default=True,
        description="Start writing the reply on the recogniser's settled words during the "
        "end-of-utterance silence (Deepgram); an early reply the caller talks past is dropped",
    )
    max_conversation_turns: int = Field(default=40, ge=1)
    max_conversation_s: float = Field(default=900.0, ge=10)

    # --- recording, metrics ----------------------------------------------------
    record_calls: bool = Field(
        default=False, description="Save caller audio per call (DATA_DIR/recordings); callers are told"
    )
    latency_target_ms: float = Field(default=800.0, ge=50.0, description="Voice-to-voice target line")
    dead_air_s: float = Field(default=3.0, ge=0.5, description="Silences this long count as dead air")
    prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PRICES.items()},
        description="Provider → unit prices in USD (stt_per_min, tts_per_1k_chars, llm_*_per_1m_tokens)",
    )

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    # --- session / UI -----------------------------------------------------------
    max_frame_queue_s: float = Field(
        default=30.0, ge=1.0, description="Audio backlog kept when decoding falls behind"
    )
    ui_poll_interval_s: float = Field(default=0.3, ge=0.1, le=5.0)
    ice_loopback: bool = Field(
        default=True,
        description="Offer 127.0.0.1 as an ICE candidate (browser on the same machine)",
    )
    log_level: str = "INFO"

    @field_validator("data_dir", "pack_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value if value.is_absolute() else (PROJECT_ROOT / value)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "voice_copilot.sqlite3"

    cache_dir_override: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("VC_CACHE_DIR", "cache_dir"),
        description="Model caches (default: DATA_DIR/cache)",
    )

    @property
    def cache_dir(self) -> Path:
        return self.cache_dir_override or (self.data_dir / "cache")

    def validate_providers(self) -> None:
        """Fail fast if a chosen provider lacks its key.

        Raises:
            ConfigError: naming the missing environment variable(s).
        """
        missing: list[str] = []
        for (stage, provider), names in REQUIRED_KEYS.items():
            if getattr(self, stage) != provider:
                continue
            for name in names:
                if not getattr(self, name.lower()):
                    missing.append(
                        f"{stage.upper()}={provider} needs {name}; set {name} in the "
                        f"environment, .env or .streamlit/secrets.toml, or choose another "
                        f"provider with VC_{stage.upper()}"
                    )
        if missing:
            raise ConfigError("; ".join(missing))
        if not self.pack_dir.is_dir():
            raise ConfigError(f"VC_PACK_DIR={self.pack_dir} is not a directory")
        if self.intent_encoder is not None and not (self.intent_encoder / "config.json").is_file():
            raise ConfigError(
                f"VC_INTENT_ENCODER={self.intent_encoder} is not an encoder folder (no config.json); "
                "build one with `python -m core.intent_tuning --train TRAIN.csv --out DIR` or unset it"
            )

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, for display."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if value and (name.endswith("_key") or name in {"database_url", "sentry_dsn"}):
                text = str(value)
                out[name] = f"{text[:4]}…{text[-2:]}" if len(text) > 8 else "••••"
            elif isinstance(value, str) and "://" in value:
                out[name] = mask_url(value)
            else:
                out[name] = str(value) if isinstance(value, Path) else value
        return out


SECRET_QUERY = re.compile(r"key|token|secret|password|passwd|pwd|auth|sig|signature|credential|session", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``https://user:pass@host/p?api-key=abc&x=1`` → ``https://user:••••@host/p?api-key=••••&x=1``:
    the password and secret-looking query values are hidden, the rest stays readable."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:••••@{host}" if ":" in userinfo else f"••••@{host}"
        pairs = [pair.partition("=") for pair in parts.query.split("&")] if parts.query else []
        query = "&".join(k + eq + ("••••" if eq and SECRET_QUERY.search(k) else v) for k, eq, v in pairs)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not parseable: show nothing of it
        return "••••"


_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def mask_urls(text: str) -> str:
    """Every URL in ``text`` (an error message, say) through :func:`mask_url`."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Build and validate settings; ``overrides`` (e.g. st.secrets) win over env.

    Raises:
        ConfigError: a chosen provider's key is missing, or a value is invalid.
    """
    from pydantic import ValidationError

    try:
        settings = Settings(**(overrides or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
    settings.validate_providers()
    return settings
