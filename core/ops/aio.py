"""Small asyncio helpers shared by the voice agent and the provider wrappers."""

from __future__ import annotations

import contextlib


async def close_quietly(stream: object) -> None:
    """``aclose`` an async generator, ignoring one already unwinding after a cancel."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(RuntimeError):
            await aclose()
