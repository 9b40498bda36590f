import os
import sys
import threading

import pytest

from core.ops.threads import BUILD_NICE, lower_this_threads_priority


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux behaviour")
def test_only_the_calling_thread_is_lowered():
    seen = {}

    def work():
        lower_this_threads_priority()
        seen["build"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["build"] == BUILD_NICE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0  # this thread untouched
