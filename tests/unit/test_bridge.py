import time

from core.bridge import STRAGGLER_WINDOW_S, CaptureBridge
from core.session import VoiceSession
from core.store import StoreError
from core.vad import EndpointConfig, Endpointer, EnergyFrameClassifier
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
    import core.bridge as mod

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
