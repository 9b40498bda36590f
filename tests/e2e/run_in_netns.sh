#!/bin/sh
# Run a command in a fresh network namespace whose only interface is loopback (root only).
#   tests/e2e/run_in_netns.sh python -m pytest tests/e2e
# pytest tests/e2e does this by itself when it is not already isolated (see conftest.py);
# this script is for running other tools (or a whole pytest session) the same way.
set -eu
if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root (unshare --net); run as root" >&2
    exit 1
fi
command -v unshare >/dev/null 2>&1 || { echo "$0: unshare not found (util-linux)" >&2; exit 1; }
command -v ip >/dev/null 2>&1 || { echo "$0: ip not found: apt-get install iproute2" >&2; exit 1; }
export VC_E2E_NETNS=1
exec unshare --net sh -c 'ip link set lo up && exec "$@"' vc-netns "$@"
