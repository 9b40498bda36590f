"""A throwaway PostgreSQL server for tests, or the one named by ``VC_TEST_DATABASE_URL``.

The local server is a fresh cluster in a temporary folder, listening on 127.0.0.1 on a free
port, with password authentication over TCP (so wrong credentials can be tested) and
durability off (tests never need a crash-safe disk). ``initdb`` refuses to run as root, so
as root the cluster belongs to the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 60
EXTERNAL_CONNECT_TIMEOUT_S = 5
SUPERUSER = "postgres"
CLUSTER_OWNER = "postgres"  # system user that owns the cluster when we run as root


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started or reached here; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL is not installed (no initdb); `apt-get install postgresql` or set "
        "VC_TEST_DATABASE_URL to a server where this user may CREATE DATABASE"
    )


@dataclass
class PgServer:
    """A server the tests may create and drop databases on."""

    admin_url: str  # any database on the server, as a user allowed to CREATE DATABASE
    stop: Callable[[], None] = field(default=lambda: None)

    def url_for(self, dbname: str) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        info = conninfo_to_dict(self.admin_url)
        info["dbname"] = dbname
        return make_conninfo(**info)

    def create_database(self) -> str:
        """A new empty database; returns its connection string."""
        import psycopg

        name = f"vc_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        name = conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


def start_local_server(durable: bool = False) -> PgServer:
    """initdb + pg_ctl start in a temporary folder; raises PostgresUnavailable if it cannot.

    ``durable`` keeps the server's default durability (fsync, synchronous commit), as a
    benchmark of write throughput needs; tests turn it off.
    """
    bin_dir = _bin_dir()
    owner: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(CLUSTER_OWNER)
        except KeyError as exc:
            raise PostgresUnavailable(f"running as root and there is no {CLUSTER_OWNER!r} user") from exc
        if not shutil.which("runuser"):
            raise PostgresUnavailable("running as root and runuser is missing (util-linux)")
        owner = CLUSTER_OWNER
    root = Path(tempfile.mkdtemp(prefix="vc-pg-"))
    data, password = root / "data", secrets.token_hex(12)
    (root / "pw").write_text(password)
    if owner:
        shutil.chown(root, owner)
        shutil.chown(root / "pw", owner)
    port = free_port()

    def run(cmd: list[str]) -> None:
        done = subprocess.run(_as_owner(cmd, owner), capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            log = root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{cmd[0]} failed: {done.stderr.strip()} {tail}")

    run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-E", "UTF8", "--no-sync",
         "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={root / 'pw'}"])
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"),
         "-w", "-t", str(START_TIMEOUT_S), "start"])

    def stop() -> None:
        subprocess.run(_as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], owner),
                       capture_output=True, timeout=START_TIMEOUT_S)
        shutil.rmtree(root, ignore_errors=True)

    url = f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/postgres"
    _wait_ready(url)
    return PgServer(url, stop)


def _wait_ready(url: str) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def server() -> PgServer:
    """The external server from VC_TEST_DATABASE_URL, else a fresh local one."""
    try:
        import psycopg
    except ImportError as exc:
        raise PostgresUnavailable("psycopg is not installed (pip install 'psycopg[binary]')") from exc
    external = os.environ.get("VC_TEST_DATABASE_URL")
    if external:
        try:
            psycopg.connect(external, connect_timeout=EXTERNAL_CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            raise PostgresUnavailable(f"VC_TEST_DATABASE_URL cannot be reached: {exc}") from exc
        return PgServer(external)
    return start_local_server()


def main(argv: Sequence[str]) -> int:
    """``python -m tests.pg CMD ...``: run CMD with ``VC_TEST_DATABASE_URL`` naming a fresh
    database on a throwaway durable server (or on the server already named there), then
    remove it. Without PostgreSQL, CMD runs anyway, and this says why there is none."""
    import sys

    if not argv:
        print("usage: python -m tests.pg COMMAND [ARG ...]", file=sys.stderr)
        return 2
    env = dict(os.environ)
    pg: PgServer | None = None
    url = ""
    try:
        pg = server() if env.get("VC_TEST_DATABASE_URL") else start_local_server(durable=True)
        url = pg.create_database()
        env["VC_TEST_DATABASE_URL"] = url
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        print(f"no PostgreSQL server for this run: {exc}", file=sys.stderr)
    try:
        return subprocess.run(list(argv), env=env).returncode
    finally:
        if pg is not None:
            if url:
                pg.drop_database(url)
            pg.stop()


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
