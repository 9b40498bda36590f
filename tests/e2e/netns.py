"""Run browser tests in a network namespace that has only the loopback interface.

Nothing a browser test starts (the Streamlit server, Chromium) may reach another
machine. As root, ``unshare -n`` gives a fresh network namespace whose only interface
is ``lo`` (down until ``ip link set lo up``); a process in it cannot open a connection
to anything but 127.0.0.1 / ::1.

``isolated()`` tells whether the current process already runs in such a namespace;
``wrap()`` builds the command line that runs a command inside a new one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

# Set by wrap() for the child; informative only: isolation is always checked for real.
ENV_FLAG = "VC_E2E_NETNS"
# Set to 1 (CI) to fail instead of skip when a namespace cannot be created.
REQUIRE_FLAG = "VC_E2E_REQUIRE"


def interfaces() -> list[str]:
    """Network interface names in this process's network namespace (via netlink).

    Not /sys/class/net: sysfs shows the namespace it was mounted in, not ours.
    """
    return sorted(name for _, name in socket.if_nameindex())


def _is_up(name: str) -> bool:
    """IFF_UP of an interface in this network namespace (SIOCGIFFLAGS)."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), 0x8913, req))[1]
    return bool(flags & 0x1)


def isolated() -> bool:
    """True when the only network interface is loopback and it is up."""
    try:
        return interfaces() == ["lo"] and _is_up("lo")
    except OSError:
        return False


def unavailable_reason() -> str | None:
    """Why a loopback-only namespace cannot be created here, or None if it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return (
            "browser e2e tests run in a private network namespace (`unshare -n`), which needs "
            "root; run as root, or start pytest inside a loopback-only namespace yourself"
        )
    if shutil.which("unshare") is None:
        return "`unshare` not found (Debian package util-linux)"
    if shutil.which("ip") is None:
        return "`ip` not found: install the Debian package iproute2 (apt-get install iproute2)"
    try:  # root in a container may still lack CAP_SYS_ADMIN
        probe = subprocess.run(
            wrap(["true"]), capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot create a network namespace: {exc}"
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


def wrap(argv: list[str]) -> list[str]:
    """``argv`` run in a new network namespace with loopback up and nothing else."""
    script = 'ip link set lo up && exec "$@"'
    return ["unshare", "--net", "sh", "-c", script, "vc-netns", *argv]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env[ENV_FLAG] = "1"
    # Nothing in the namespace can reach a proxy; make sure nothing tries.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env.update(extra or {})
    return env
