from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cloud: calls a real cloud provider (needs its key; skipped without)")


@pytest.fixture(scope="session")
def pack_kb():
    """The bank pack and its lexical KB index."""
    from core.config import PROJECT_ROOT
    from core.kb.lexical import LexicalIndex
    from core.kb.pack import load_pack

    pack = load_pack(PROJECT_ROOT / "packs" / "bank")
    return pack, LexicalIndex.from_pack(pack)
