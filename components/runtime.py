"""The app layer's one seam to core: settings and process-wide services.

``st.cache_resource`` holds what is process-wide and thread-safe (settings, store,
models); per-user state lives in ``st.session_state``.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from core.config import ConfigError, Settings, load_settings
from core.logs import configure_logging
from core.pack import PackError
from core.services import Services, build_services
from core.store import StoreError
from core.stt import STTError
from core.tts import TTSError


def _secrets_overrides() -> dict[str, Any]:
    """Values from .streamlit/secrets.toml, if the file exists (flat keys only)."""
    try:
        return {k: v for k, v in st.secrets.to_dict().items() if not isinstance(v, dict)}
    except Exception:  # no secrets file, or one Streamlit cannot parse: run on env/.env
        return {}


@st.cache_resource(show_spinner="Loading speech and language models…")
def _services(data_dir_env: str) -> Services:
    """One per process (and per VC_DATA_DIR, so tests can point at their own)."""
    settings = load_settings(_secrets_overrides())
    configure_logging(settings.log_level)
    services = build_services(settings)
    services.warm_up()  # the sentence model now; the rest in the background
    return services


def get_services() -> Services:
    """Services for this process; stops the page with a clear message on bad config."""
    try:
        return _services(os.environ.get("VC_DATA_DIR", ""))
    except (ConfigError, PackError, StoreError, STTError, TTSError, NotImplementedError) as exc:
        st.error(f"Voice Copilot cannot start: {exc}")
        st.stop()
        raise  # unreachable: st.stop raises


def get_settings() -> Settings:
    return get_services().settings
