"""What only the Postgres store has: connection strings, server errors, several processes.

The shared Store contract runs on both backends through the ``store`` fixture
(tests/unit/test_store.py and every test using ``store``).
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.config import Settings
from core.services import open_store
from core.store import StoreError, migrate
from core.store.migrate import LEGACY_VERSION
from core.store.postgres import PostgresStore, describe_target, libpq_url
from tests.conftest import open_together
from tests.pg import free_port


def with_params(url: str, **params: str) -> str:
    info = conninfo_to_dict(url)
    info.update(params)
    return make_conninfo(**info)


def as_uri(url: str, query: str = "") -> str:
    """A Supabase-style URI (postgresql://user:pw@host:port/db?...) for a conninfo string."""
    i = conninfo_to_dict(url)
    return f"postgresql://{i['user']}:{i['password']}@{i['host']}:{i['port']}/{i['dbname']}{query}"


def test_supabase_style_url_with_pooler_parameters_works(pg_url):
    # Supabase's pooler URLs carry sslmode and pgbouncer=true; libpq itself rejects the latter.
    url = as_uri(pg_url, "?sslmode=disable&pgbouncer=true&connect_timeout=5")
    assert "pgbouncer" not in libpq_url(url) and "sslmode=disable" in libpq_url(url)
    store = PostgresStore(url)
    call = store.create_call("talk", {"agent": "ana"})
    assert store.get_call(call.id).metadata == {"agent": "ana"}
    store.close()


def test_no_server_side_prepared_statements_so_transaction_poolers_work(pg_url):
    store = PostgresStore(pg_url)
    call = store.create_call("talk")
    for i in range(10):  # psycopg would prepare after 5 runs of one query by default
        store.add_segment(call.id, "caller", f"line {i}", i, i + 1)
        store.segments(call.id)
    prepared = store._rows("SELECT COUNT(*) FROM pg_prepared_statements")[0][0]
    assert prepared == 0
    store.close()


def test_wrong_password_is_a_clear_error_without_the_password(pg_url):
    bad = with_params(pg_url, password="not-the-password-42")
    with pytest.raises(StoreError, match="authentication failed") as err:
        PostgresStore(bad)
    assert "not-the-password-42" not in str(err.value)


def test_unreachable_server_names_host_and_port_not_the_password(pg_url):
    port = free_port()  # nothing listens there
    url = f"postgresql://vc:s3cret-pw@127.0.0.1:{port}/calls"
    with pytest.raises(StoreError, match=f"cannot connect to Postgres at 127.0.0.1:{port}/calls") as err:
        PostgresStore(url, connect_timeout_s=2)
    assert "s3cret-pw" not in str(err.value)
    assert describe_target("not a url ===").startswith("the DATABASE_URL server")


def test_ssl_required_by_the_url_but_not_offered_is_a_connect_error(pg_url):
    with pytest.raises(StoreError, match="cannot connect to Postgres at 127.0.0.1"):
        PostgresStore(as_uri(pg_url, "?sslmode=require"))


def test_read_only_database_is_a_clear_error_and_reads_still_work(pg_url):
    store = PostgresStore(pg_url)
    call = store.create_call("browser")
    store.add_segment(call.id, "caller", "kept line", 0, 100)
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as admin:  # like a read replica
        admin.execute(f"ALTER DATABASE \"{conninfo_to_dict(pg_url)['dbname']}\" SET default_transaction_read_only = on")
    ro = PostgresStore(pg_url)  # already migrated: opening does not write
    with pytest.raises(StoreError, match="read-only"):
        ro.add_segment(call.id, "caller", "new line", 200, 300)
    assert [s.text for s in ro.segments(call.id)] == ["kept line"]
    ro.close()


def test_newer_schema_is_refused(pg_url):
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")  # a revision of a later release
    with pytest.raises(StoreError, match="newer than this release"):
        PostgresStore(pg_url)


def test_newer_schema_of_a_release_before_alembic_is_refused(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (%s)", (LEGACY_VERSION + 5,))
    with pytest.raises(StoreError, match="has schema version 8, newer than this release"):
        PostgresStore(pg_url)


def test_processes_starting_together_migrate_once(pg_url):
    stores = open_together(lambda: PostgresStore(pg_url))
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrate.head(),)]
    for s in stores:
        s.close()


def test_a_dropped_connection_is_replaced(pg_url):
    store = PostgresStore(pg_url)
    call = store.create_call("talk")
    with psycopg.connect(pg_url, autocommit=True) as admin:  # server restart / pooler timeout
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'voice-copilot' AND pid <> pg_backend_pid()"
        )
    assert store.get_call(call.id).status == "active"  # the read retried on a new connection
    store.add_segment(call.id, "caller", "still here", 0, 10)
    assert [s.text for s in store.segments(call.id)] == ["still here"]
    store.close()


def test_a_write_on_a_dropped_connection_fails_once_then_the_next_reconnects(pg_url):
    store = PostgresStore(pg_url)
    call = store.create_call("talk")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'voice-copilot' AND pid <> pg_backend_pid()"
        )
    with pytest.raises(StoreError, match="Postgres"):
        store.add_segment(call.id, "caller", "lost", 0, 10)  # writes are never repeated
    store.add_segment(call.id, "caller", "kept", 0, 10)
    assert [s.text for s in store.segments(call.id)] == ["kept"]
    store.close()


def test_two_stores_on_one_database_see_each_others_calls_and_reaping(pg_url):
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    call = a.create_call("talk")
    a.add_segment(call.id, "caller", "my card was charged twice", 0, 1500)
    assert [c.id for c in b.list_calls(status="active")] == [call.id]
    assert b.get_call(call.id).segment_count == 1
    b.end_call(call.id)
    assert a.get_call(call.id).status == "ended"
    a.close()
    b.close()


def test_open_store_builds_postgres_from_settings(pg_url, tmp_path):
    settings = Settings(store_provider="postgres", database_url=pg_url, data_dir=tmp_path)
    store = open_store(settings)
    assert isinstance(store, PostgresStore)
    assert store.health()["backend"] == "postgres"
    assert "password" not in str(store.health())
    store.close()
