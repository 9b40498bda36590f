import time

from core.pipeline.bridge import STRAGGLER_WINDOW_S, CaptureBridge
from core.pipeline.session import VoiceSession
from core.pipeline.vad import EndpointConfig, Endpointer, EnergyFrameClassifier
from core.store import StoreError
from tests.conftest import silence
from tests.fakes import FakeSTT


def opener(store):
    def open_session():
        s = VoiceSession(store, FakeSTT(), lambda: Endpointer(EndpointConfig(), EnergyFrameClassifier()))
        s.start()
        return s

    return open_session


def test_first_frame_opens_a_call_and_close_ends_it(store):
    bridge = CaptureBridge(opener(store))
    bridge.on_frame((silence(0.02), 16000))
    call_id = bridge.last_call_id
    assert call_id and store.get_call(call_id).status == "active"
    bridge.close()
    assert store.get_call(call_id).status == "ended"
    bridge.on_frame((silence(0.02), 16000))  # straggler right after Stop
    assert bridge.session is None and len(store.list_calls()) == 1


def test_new_capture_after_stop_opens_a_new_call(store, monkeypatch):
    import core.pipeline.bridge as mod

    bridge = CaptureBridge(opener(store))
    bridge.on_frame((silence(0.02), 16000))
    first = bridge.last_call_id
    bridge.close(wait=False)
    monkeypatch.setattr(mod, "STRAGGLER_WINDOW_S", 0.0)
    time.sleep(0.05)
    bridge.on_frame((silence(0.02), 16000))
    assert bridge.last_call_id != first
    bridge.close()
    assert STRAGGLER_WINDOW_S > 0


def test_store_failure_is_reported_not_raised():
    def failing():
        raise StoreError("the database file x is locked")

    bridge = CaptureBridge(failing)
    bridge.on_frame((silence(0.02), 16000))  # must not raise into aiortc's loop
    assert "locked" in bridge.error


def _wait_status(store, call_id, status, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while store.get_call(call_id).status != status and time.monotonic() < deadline:
        time.sleep(0.02)
    return store.get_call(call_id)


def test_media_lost_without_stop_fails_the_call_with_the_reason(store):
    bridge = CaptureBridge(opener(store))
    bridge.on_frame((silence(0.02), 16000))
    call_id = bridge.last_call_id
    bridge.fail("the WebRTC connection was lost (ICE failed)", grace_s=0.05)
    call = _wait_status(store, call_id, "failed")
    assert call.status == "failed" and call.error == "the WebRTC connection was lost (ICE failed)"


def test_a_stop_arriving_within_the_grace_is_a_normal_hang_up(store):
    bridge = CaptureBridge(opener(store))
    bridge.on_frame((silence(0.02), 16000))
    call_id = bridge.last_call_id
    bridge.fail("the WebRTC connection was lost (ICE closed)", grace_s=0.3)  # the browser closed as it sent Stop
    bridge.close()  # ... and the Stop reaches the server
    time.sleep(0.5)
    call = store.get_call(call_id)
    assert call.status == "ended" and not call.error
