"""The app layer's one seam to core: settings and process-wide services.

``st.cache_resource`` holds what is process-wide and thread-safe (settings, store,
models); per-user state lives in ``st.session_state``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import streamlit as st

from core.config import ConfigError, Settings, load_settings
from core.kb.pack import PackError
from core.language.text import without_remote_images
from core.ops.logs import configure_logging
from core.services import Services, build_services
from core.speech.stt import STTError
from core.speech.tts import TTSError
from core.store import StoreError


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
    _expire_closed_tabs()
    return services


SESSION_SWEEP_S = 30.0


def _expire_closed_tabs() -> None:
    """Let Streamlit forget closed tabs' sessions on an idle server too.

    Streamlit keeps a closed tab's session for ``server.disconnectedSessionTTL`` (120 s) so
    the tab can reconnect, but removes an expired one only on the next write to its store,
    i.e. when another tab connects; until then the session, its state and the threads
    watching it stay. Expiring the store every :data:`SESSION_SWEEP_S` lets them go
    (with :func:`components.rtc.release_closed_tabs`, which lets the watchers end).
    """
    import threading

    try:
        from streamlit.runtime import Runtime

        manager = Runtime.instance()._session_mgr  # no public API for this: all guarded
        lock, expire = manager._storage_lock, manager._session_storage._cache.expire
    except Exception:  # noqa: BLE001 - not under `streamlit run` (AppTest), or Streamlit changed
        return

    def sweep() -> None:
        while True:
            threading.Event().wait(SESSION_SWEEP_S)
            try:
                with lock:
                    expire()
            except Exception:  # noqa: BLE001 - housekeeping must never take the server down
                log.debug("could not expire closed sessions", exc_info=True)

    threading.Thread(target=sweep, name="session-sweep", daemon=True).start()


def get_services() -> Services:
    """Services for this process; stops the page with a clear message on bad config."""
    try:
        return _services(os.environ.get("VC_DATA_DIR", ""))
    except (ConfigError, PackError, StoreError, STTError, TTSError, NotImplementedError) as exc:
        st.error(f"Voice Copilot cannot start: {exc}")
        st.stop()
        raise  # unreachable: st.stop raises


log = logging.getLogger(__name__)
STORE_FAILED = (
    "The call store could not be read: {error}. What does not need it keeps working; the Health "
    "page checks the store. If the file is damaged, restore it from a backup or move it aside "
    "(a new one is made at start-up)."
)
F = TypeVar("F", bound=Callable[..., Any])


def show_store_error(exc: StoreError) -> None:
    """Say the store failed, in words (the traceback goes to the log)."""
    log.error("the store failed while rendering a page", exc_info=exc)
    st.error(STORE_FAILED.format(error=exc))


@contextmanager
def store_section(stop_page: bool = False) -> Iterator[None]:
    """``with store_section():`` a part of a page that reads the store: a store failure
    becomes a message and the page goes on after the block (or stops, ``stop_page``, when
    nothing below can work without the data)."""
    try:
        yield
    except StoreError as exc:
        show_store_error(exc)
        if stop_page:
            st.stop()


def store_safe(render: F) -> F:
    """A page part (e.g. a polling fragment) that shows a store failure as a message,
    so the rest of the page keeps working."""

    @functools.wraps(render)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return render(*args, **kwargs)
        except StoreError as exc:
            show_store_error(exc)
            return None

    return guarded  # type: ignore[return-value]


def kb_markdown(text: str) -> str:
    """KB-supplied Markdown made safe to show: images only from ``VC_KB_IMAGE_HOSTS``."""
    return without_remote_images(text, get_settings().kb_image_hosts.split(","))


def get_settings() -> Settings:
    return get_services().settings
