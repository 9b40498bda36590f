"""The phrase cache every offline voice uses: a reply's recurring pieces (greetings,
"Let me check that for you.") are synthesised once and replayed at no cost."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from core.speech.audio import Int16Array

CACHE_PHRASES = 64


class PhraseCache:
    """Least-recently-used audio per phrase (case and spacing ignored); thread-safe."""

    def __init__(self, size: int = CACHE_PHRASES):
        self._items: OrderedDict[str, Int16Array] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def key(text: str) -> str:
        return " ".join(text.split()).lower()

    def get(self, text: str) -> Int16Array | None:
        key = self.key(text)
        with self._lock:
            audio = self._items.get(key)
            if audio is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return audio

    def put(self, text: str, audio: Int16Array) -> None:
        with self._lock:
            self._items[self.key(text)] = audio
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def through(self, text: str, synthesize: Callable[[str], Int16Array]) -> Int16Array:
        """The cached audio of ``text``, synthesised (and kept) on a miss."""
        audio = self.get(text)
        if audio is None:
            audio = synthesize(text)
            self.put(text, audio)
        return audio
