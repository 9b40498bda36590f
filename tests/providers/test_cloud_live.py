"""Against the real vendors: run only with their keys (``pytest -m cloud``); skipped without."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from core.config import PROJECT_ROOT
from core.conversation.reply import Conversation
from core.kb.lexical import LexicalIndex
from core.kb.pack import load_pack
from core.providers.llm import LLMAnalyst, LLMResponder

pytestmark = pytest.mark.cloud


def needs(key: str) -> str:
    value = os.environ.get(key)
    if not value:
        pytest.skip(f"{key} not set")
    return value


def backends():
    from core.providers.gemini_llm import GeminiBackend
    from core.providers.openai_llm import OpenAIBackend

    return {
        "openai": lambda: OpenAIBackend(needs("OPENAI_API_KEY"), os.environ.get("VC_OPENAI_MODEL", "gpt-4o-mini"),
                                        os.environ.get("OPENAI_BASE_URL")),
        "gemini": lambda: GeminiBackend(needs("GEMINI_API_KEY"), os.environ.get("VC_GEMINI_MODEL", "gemini-2.5-flash")),
    }


@pytest.mark.parametrize("vendor", ["openai", "gemini"])
def test_live_grounded_reply_and_intent(vendor):
    backend = backends()[vendor]()
    pack = load_pack(PROJECT_ROOT / "packs" / "bank")
    conversation = Conversation()
    conversation.add("caller", "how do I freeze my debit card")

    async def run() -> str:
        return "".join([d async for d in LLMResponder(backend, pack, LexicalIndex.from_pack(pack)).stream(conversation)])

    reply = asyncio.run(run())
    assert 0 < len(reply.split()) < 80
    assert LLMAnalyst(backend, pack).predict("I want to freeze my card").label == "card_freeze"


def test_live_whisper_transcribes_silence_without_error():
    from core.providers.whisper_stt import WhisperSTT

    stream = WhisperSTT(needs("OPENAI_API_KEY"), base_url=os.environ.get("OPENAI_BASE_URL")).open()
    stream.accept(np.zeros(16000, np.int16))
    assert isinstance(stream.finish().text, str)
