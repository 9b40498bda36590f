"""Postgres connection strings and errors: what to connect to, and what went wrong.

Messages name the server as ``host:port/dbname`` and never include the password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core.store import StoreError

CONNECT_TIMEOUT_S = 10
# Query parameters some providers add to their URLs that libpq itself rejects.
NON_LIBPQ_URL_PARAMS = frozenset({"pgbouncer", "supa", "connection_limit", "pool_timeout"})


def psycopg_module() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise StoreError(
            "VC_STORE_PROVIDER=postgres needs the psycopg package: "
            "pip install 'psycopg[binary]>=3.3' (it is in requirements.txt)"
        ) from exc
    return psycopg


def libpq_url(url: str) -> str:
    """``url`` without query parameters that poolers document but libpq rejects."""
    if "://" not in url:
        return url  # key=value conninfo: passed through as is
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in NON_LIBPQ_URL_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(query)))


def describe_target(url: str) -> str:
    """``host:port/dbname`` of a connection string, never its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(libpq_url(url))
    except Exception:  # unparsable: say so without echoing it (it may hold a password)
        return "the DATABASE_URL server (the URL could not be parsed)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"


def translate_error(exc: Exception, target: str) -> StoreError:
    psycopg = psycopg_module()
    errors = psycopg.errors
    msg = str(exc).lower()
    if isinstance(exc, errors.ReadOnlySqlTransaction) or "read-only" in msg:
        return StoreError(
            f"the Postgres database {target} is read-only (a replica, or "
            f"default_transaction_read_only is on); point DATABASE_URL at the primary"
        )
    if isinstance(exc, errors.InvalidPassword) or "password authentication failed" in msg:
        return StoreError(
            f"Postgres at {target} refused the credentials (authentication failed); "
            f"check the user and password in DATABASE_URL"
        )
    if isinstance(exc, errors.InsufficientPrivilege):
        return StoreError(f"the DATABASE_URL user lacks a privilege on {target}: {exc}")
    if "does not exist" in msg and "database" in msg:
        return StoreError(f"the database in DATABASE_URL does not exist on {target}; create it first")
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(
            f"cannot connect to Postgres at {target}: {first_line(exc)}; check the host, port "
            f"and that the server is running and reachable (timeout {CONNECT_TIMEOUT_S} s)"
        )
    return StoreError(f"Postgres error on {target}: {first_line(exc)}")


def first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
