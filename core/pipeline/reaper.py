"""Calls left "active" by a process that died are marked failed, promptly and whatever
page is open.

Every call records the process that runs it (``metadata["owner"]``: host, pid and the
pid's start time, so a reused pid is not mistaken for the owner). Two rules then find
dead calls:

* **Owner gone** (same host): the owner's pid no longer runs, or now belongs to another
  process. Such a call is failed at once: after ``kill -9`` and a restart within a second,
  the new process fails the old calls during start-up.
* **Silent** (any host, e.g. another machine sharing Postgres): no heartbeat for
  ``stale_after_s`` (the session beats every 2 s).

:class:`Reaper` applies both every :data:`REAP_INTERVAL_S` on a daemon thread of the
process, so a dead call is failed even if nobody opens the Live copilot page.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.store import Store, StoreError

REPEAT_WARNING_S = 300.0  # a store that stays down is reported again this often, not on every check

log = logging.getLogger(__name__)

REAP_INTERVAL_S = 5.0
DEAD_OWNER_ERROR = "the process handling this call stopped unexpectedly (pid {pid} is gone)"


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after its last ")"
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


def process_owner() -> dict[str, Any]:
    """This process, as recorded in the calls it starts."""
    pid = os.getpid()
    return {"host": _host(), "pid": pid, "started": _start_ticks(pid)}


def owner_alive(owner: Mapping[str, Any]) -> bool | None:
    """Whether the process that owns a call still runs: None when it cannot be told
    (another host, or no owner recorded)."""
    pid = owner.get("pid")
    if owner.get("host") != _host() or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        pass
    started = owner.get("started")
    now_started = _start_ticks(pid)
    # a different start time: the pid was reused by a new process
    return started is None or now_started is None or started == now_started


def reap_dead_calls(store: Store, stale_after_s: float) -> list[str]:
    """Fail active calls whose owner is gone or silent; the ids failed."""
    reaped = list(store.reap_stale_calls(stale_after_s))
    for call in store.list_calls(limit=1000, status="active"):
        owner = call.metadata.get("owner") if isinstance(call.metadata, dict) else None
        if isinstance(owner, Mapping) and owner_alive(owner) is False:
            store.end_call(call.id, "failed", DEAD_OWNER_ERROR.format(pid=owner.get("pid")))
            reaped.append(call.id)
    return reaped


class Reaper:
    """Runs :func:`reap_dead_calls` on a daemon thread until :meth:`stop`."""

    def __init__(self, store: Store, stale_after_s: float, interval_s: float = REAP_INTERVAL_S):
        self.store = store
        self.stale_after_s = stale_after_s
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="call-reaper", daemon=True)

    def start(self) -> Reaper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval_s + 1.0)

    def _run(self) -> None:
        down_since: float | None = None  # the store has been unreachable since (monotonic)
        warned_at = 0.0
        while not self._stop.wait(self.interval_s):
            try:
                reaped = reap_dead_calls(self.store, self.stale_after_s)
            except Exception as exc:  # noqa: BLE001 - the reaper must outlive any one failure
                now = time.monotonic()
                if down_since is None or now - warned_at >= REPEAT_WARNING_S:  # not every 5 s
                    down_since = down_since or now
                    warned_at = now
                    log.warning("could not check for dead calls", exc_info=not isinstance(exc, StoreError),
                                extra={"error": str(exc), "failing_for_s": round(now - down_since)})
                continue
            if down_since is not None:
                log.info("checking for dead calls again", extra={"after_s": round(time.monotonic() - down_since)})
                down_since = None
            if reaped:
                log.warning("marked calls of stopped processes as failed", extra={"calls": reaped})


__all__ = ["REAP_INTERVAL_S", "Reaper", "owner_alive", "process_owner", "reap_dead_calls"]
