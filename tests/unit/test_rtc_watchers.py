"""streamlit-webrtc's per-tab watcher threads end once the tab's session is gone
(hostile input and hard faults, defect 7: threads not returning to baseline)."""

from __future__ import annotations

import gc
import threading
import time
import weakref


class FakeSession:
    class _ClientState:
        page_script_hash = "page-a"

    def __init__(self) -> None:
        from streamlit_webrtc._compat import AppSessionState

        self._state = AppSessionState.APP_NOT_RUNNING
        self._client_state = self._ClientState()


def test_a_watcher_ends_and_releases_its_resources_when_the_session_is_collected():
    from streamlit_webrtc.shutdown import SessionShutdownObserver

    from components.rtc import release_closed_tabs

    release_closed_tabs()
    released = threading.Event()
    observer = SessionShutdownObserver.__new__(SessionShutdownObserver)
    observer._polling_thread_stop_event = threading.Event()
    observer._callback = released.set
    session = FakeSession()
    watcher = threading.Thread(
        target=observer._polling_thread_impl, kwargs={"app_session_ref": weakref.ref(session),
                                                      "initial_page_script_hash": "page-a"}, daemon=True,
    )
    watcher.start()
    time.sleep(0.2)
    assert watcher.is_alive()  # the tab's session is still there
    del session
    gc.collect()
    watcher.join(3.0)
    assert not watcher.is_alive() and released.is_set()
