from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cloud: calls a real cloud provider (needs its key; skipped without)")
