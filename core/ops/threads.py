"""Thread helpers shared by background work (model builds, speech-model rebuilds)."""

from __future__ import annotations

import contextlib
import os
import threading

BUILD_NICE = 10  # background builds run at this nice value; live calls stay at 0


def lower_this_threads_priority(nice: int = BUILD_NICE) -> None:
    """Make the calling thread yield the CPU to live calls (on Linux, nice is per thread).

    A model build is seconds of CPU; on a 2-core machine it must not starve the audio
    pipeline of a call that starts meanwhile. Threads it starts inherit the priority.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
