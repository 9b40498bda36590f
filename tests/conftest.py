from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings as hypothesis_settings

# The fuzz suite (tests/unit/test_fuzz.py) in bounded time: examples per property and no
# per-example deadline (a loaded CI machine is slow, not wrong). VC_FUZZ_EXAMPLES for more.
hypothesis_settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("VC_FUZZ_EXAMPLES", "120")), deadline=None, database=None
)
hypothesis_settings.load_profile("fuzz")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: real browser end-to-end (network namespace)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


# Language models built from the pack are cached here across tests and runs.
SHARED_CACHE = ROOT / "data" / "test-cache" / "cache"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VC_CACHE_DIR", str(SHARED_CACHE))
    return tmp_path


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for this test session (skipped without one, unless VC_PG_REQUIRE=1)."""
    from tests.pg import PostgresUnavailable, server

    try:
        srv = server()
    except PostgresUnavailable as exc:
        if os.environ.get("VC_PG_REQUIRE") == "1" or os.environ.get("VC_TEST_DATABASE_URL"):
            pytest.fail(f"PostgreSQL required (VC_PG_REQUIRE or VC_TEST_DATABASE_URL) but: {exc}")
        pytest.skip(f"no PostgreSQL: {exc}")
    yield srv
    srv.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """Connection string of a fresh, empty database, dropped after the test."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    """Every store test runs on each backend (the Store contract)."""
    if request.param == "sqlite":
        from core.store.sqlite import SQLiteStore

        s = SQLiteStore(tmp_path / "test.sqlite3")
    else:
        from core.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_url"))
    yield s
    s.close()


def open_together(open_store, count: int = 6) -> list:
    """``count`` stores opened by as many threads at once (processes starting together);
    fails the test with the first error any of them raised."""
    import threading

    stores: list = []
    errors: list[Exception] = []

    def open_one() -> None:
        try:
            stores.append(open_store())
        except Exception as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(stores) == count, errors
    return stores


def tone(freq_hz: float, seconds: float, level: float = 0.3, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq_hz * t) * level * 32767).astype(np.int16)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA


os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _background_builds_finish_before_capture_closes():
    """Model builds started by a test log when they finish; let them finish while pytest
    still captures output, instead of writing to a closed stream at exit."""
    yield
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("build-"):
            thread.join(120)
