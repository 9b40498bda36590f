import threading
import time

import av
import numpy as np
import pytest

from core.pipeline.events import ErrorEvent, FinalEvent, PartialEvent, SettledEvent
from core.pipeline.session import VoiceSession
from core.pipeline.vad import EndpointConfig, Endpointer, EnergyFrameClassifier
from core.store import StoreError
from tests.conftest import silence, tone
from tests.fakes import FakeSTT

CFG = EndpointConfig(
    speech_start_ms=60, end_of_utterance_silence_ms=300, min_speech_ms=150, max_utterance_ms=8000, pre_roll_ms=150
)


def endpointer():
    return Endpointer(CFG, EnergyFrameClassifier(-35))


def bursts(n: int, speech_s: float = 0.8, gap_s: float = 0.7) -> np.ndarray:
    parts = [silence(0.3)]
    for i in range(n):
        parts += [tone(300 + 100 * i, speech_s), silence(gap_s)]
    return np.concatenate(parts)


def feed(session: VoiceSession, audio: np.ndarray, chunk: int = 320, realtime: bool = False) -> None:
    for i in range(0, audio.size, chunk):
        session.push_pcm(audio[i : i + chunk])
        if realtime:
            time.sleep(chunk / 16000)
    assert session.wait_idle(20)


def make(store, stt=None, **kw):
    return VoiceSession(store, stt or FakeSTT(["my card is lost", "please block it", "thanks"]), endpointer, **kw)


def drain(session):
    out = []
    while not session.events.empty():
        out.append(session.events.get_nowait())
    return out


def test_finals_are_persisted_with_times_and_timings(store):
    s = make(store)
    call_id = s.start()
    feed(s, bursts(3))
    s.stop()
    segs = store.segments(call_id)
    assert [x.text for x in segs] == ["my card is lost", "please block it", "thanks"]
    # utterance i starts ~0.3 + 1.5 i s; start includes pre-roll, end is the last voiced frame
    for i, seg in enumerate(segs):
        start = 300 + 1500 * i
        assert start - 250 <= seg.t_start_ms <= start + 60
        assert abs(seg.t_end_ms - (start + 800)) <= 60
    timings = store.timings(call_id)
    assert len(timings) == 3 and all(t.segment_id for t in timings)
    assert all(t.audio_ms > 800 and 0 < t.rtf < 1 for t in timings)
    assert store.get_call(call_id).status == "ended"
    snap = s.snapshot()
    assert snap.state == "ended" and len(snap.segments) == 3 and snap.partial == ""


def test_partials_then_final_events(store):
    s = make(store, partial_interval_ms=100)
    s.start()
    feed(s, bursts(1))
    s.stop()
    events = drain(s)
    kinds = [type(e) for e in events]
    assert PartialEvent in kinds and FinalEvent in kinds
    assert kinds.index(PartialEvent) < kinds.index(FinalEvent)
    final = next(e for e in events if isinstance(e, FinalEvent))
    assert final.persisted and final.segment.id > 0


def test_the_recogniser_hears_where_the_speech_ended_and_settled_words_go_out_in_the_pause(store):
    stt = FakeSTT(["my card is lost", "please block it"], settled=True)
    s = make(store, stt)
    s.start()
    feed(s, bursts(2))
    s.stop()
    events = drain(s)
    kinds = [type(e) for e in events if isinstance(e, (SettledEvent, FinalEvent))]
    # once per pause, each before its utterance's final
    assert kinds == [SettledEvent, FinalEvent, SettledEvent, FinalEvent]
    assert [e.text for e in events if isinstance(e, SettledEvent)] == ["my card is lost", "please block it"]
    # 0.8 s of speech after up to 150 ms of pre-roll; the 300 ms of silence after it is not speech
    assert len(stt.speech_ends) == 2
    assert all(800 <= end <= 1010 for end in stt.speech_ends), stt.speech_ends
    # a recogniser with nothing settled: no such event
    plain = make(store, FakeSTT(["my card is lost"]))
    plain.start()
    feed(plain, bursts(1))
    plain.stop()
    assert not any(isinstance(e, SettledEvent) for e in drain(plain))


def test_stop_mid_utterance_keeps_it(store):
    s = make(store)
    call_id = s.start()
    feed(s, np.concatenate([silence(0.3), tone(400, 1.0)]))  # no trailing silence
    s.stop()
    assert [x.text for x in store.segments(call_id)] == ["my card is lost"]


def test_silent_stream_produces_nothing_and_ends_cleanly(store):
    stt = FakeSTT()
    s = make(store, stt)
    call_id = s.start()
    feed(s, silence(5.0))
    s.stop()
    assert stt.opened == 0 and store.segments(call_id) == []
    assert store.get_call(call_id).status == "ended"


def test_burst_far_faster_than_real_time_loses_nothing(store):
    s = make(store, FakeSTT([f"line {i}" for i in range(20)]))
    call_id = s.start()
    audio = bursts(20, speech_s=0.5, gap_s=0.5)  # 20 s of audio pushed in one go
    for i in range(0, audio.size, 960):
        s.push_pcm(audio[i : i + 960])
    assert s.wait_idle(30)
    s.stop()
    assert [x.text for x in store.segments(call_id)] == [f"line {i}" for i in range(20)]


def test_corrupt_frames_are_reported_and_skipped(store):
    s = make(store)
    call_id = s.start()
    bad = av.AudioFrame(format="s16", layout="stereo", samples=0)
    bad.sample_rate = 48000
    nan = av.AudioFrame.from_ndarray(np.full((2, 960), np.nan, np.float32), format="fltp", layout="stereo")
    nan.sample_rate = 48000
    s.push_frame(bad)
    s.push_frame(nan)
    s.push_frame("not a frame")
    feed(s, bursts(1))
    s.stop()
    snap = s.snapshot()
    assert snap.frames_rejected == 3
    assert any("malformed audio frame" in e for e in snap.errors)
    assert [x.text for x in store.segments(call_id)] == ["my card is lost"]


def test_stt_failure_is_reported_and_the_call_goes_on(store):
    stt = FakeSTT(error="decoder exploded")
    s = make(store, stt)
    call_id = s.start()
    feed(s, bursts(2))
    stt.error = None
    feed(s, bursts(1))
    s.stop()
    assert any("decoder exploded" in e for e in s.snapshot().errors)
    assert len(store.segments(call_id)) == 1
    assert store.get_call(call_id).status == "ended"


class FlakyStore:
    """Wraps a store; writes fail while ``broken`` is set (a locked/read-only file)."""

    def __init__(self, inner):
        self.inner = inner
        self.broken = False

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name in {"add_segment", "add_timing", "heartbeat"}:

            def guarded(*a, **k):
                if self.broken:
                    raise StoreError("the database file x is read-only")
                return attr(*a, **k)

            return guarded
        return attr


def test_store_failure_mid_call_keeps_lines_and_saves_them_later(store):
    flaky = FlakyStore(store)
    s = make(flaky)
    call_id = s.start()
    feed(s, bursts(1))
    flaky.broken = True
    feed(s, bursts(1))
    snap = s.snapshot()
    assert len(snap.segments) == 2 and snap.unsaved >= 1  # still shown
    assert any("read-only" in e for e in snap.errors)
    flaky.broken = False
    s.stop()
    assert [x.text for x in store.segments(call_id)] == ["my card is lost", "please block it"]


def test_crash_marks_call_failed(store):
    def broken_endpointer():
        raise RuntimeError("endpointer could not start")

    s = VoiceSession(store, FakeSTT(), broken_endpointer)
    call_id = s.start()
    assert s._done.wait(5)
    call = store.get_call(call_id)
    assert call.status == "failed" and "endpointer could not start" in call.error
    assert s.snapshot().state == "failed"
    assert any(isinstance(e, ErrorEvent) and e.fatal for e in drain(s))


def test_no_audio_timeout_fails_the_call_with_its_reason(store):
    # nobody pressed Stop or hung up: the audio stopped arriving
    s = make(store, no_audio_timeout_s=0.2)
    call_id = s.start()
    assert s._done.wait(6)
    call = store.get_call(call_id)
    assert call.status == "failed" and "no audio" in call.error
    assert any("no audio" in e for e in s.snapshot().errors)


def test_a_stop_with_a_reason_fails_the_call_and_the_first_reason_wins(store):
    s = make(store)
    call_id = s.start()
    feed(s, bursts(1))
    s.stop(status="failed", error="the WebRTC connection was lost (ICE failed)")
    s.stop()  # a later Stop does not turn it into a normal hang-up
    call = store.get_call(call_id)
    assert call.status == "failed" and "ICE failed" in call.error
    assert [x.text for x in store.segments(call_id)] == ["my card is lost"]  # what was said is kept


def test_frames_from_another_thread_and_48k_frames(store):
    s = make(store)
    call_id = s.start()
    audio = bursts(2)
    up = np.repeat(np.interp(np.arange(audio.size * 3) / 3, np.arange(audio.size), audio), 2)
    stereo = up.astype(np.int16).reshape(1, -1)

    def sender():
        for i in range(0, stereo.shape[1] - 1920, 1920):
            f = av.AudioFrame.from_ndarray(stereo[:, i : i + 1920], format="s16", layout="stereo")
            f.sample_rate = 48000
            s.push_frame(f)

    t = threading.Thread(target=sender)
    t.start()
    t.join()
    assert s.wait_idle(20)
    s.stop()
    assert len(store.segments(call_id)) == 2


def test_frames_handed_over_while_the_loop_is_busy_share_one_wake_up(store):
    s = make(store)
    call_id = s.start()
    loop = s._loop
    wakes = []
    real = loop.call_soon_threadsafe
    loop.call_soon_threadsafe = lambda cb, *a: (wakes.append(cb), real(cb, *a))[1]
    busy = threading.Event()
    s.call_soon(lambda: (busy.set(), time.sleep(0.3)))  # the session thread is busy
    assert busy.wait(2)
    wakes.clear()
    audio = bursts(2)
    chunks = range(0, audio.size, 320)
    for i in chunks:
        s.push_pcm(audio[i : i + 320])
    assert s.wait_idle(20)
    assert len(wakes) == 1  # one wake-up for every frame handed over during the stall
    assert s.snapshot().frames_received == len(chunks)
    s.push_pcm(silence(0.02))  # an idle session is woken for the next frame at once
    assert s.wait_idle(2)
    assert len(wakes) == 2
    s.stop()  # the stop request comes after every frame already handed over
    assert [seg.text for seg in store.segments(call_id)] == ["my card is lost", "please block it"]


def test_stop_is_idempotent_and_frames_after_stop_are_ignored(store):
    s = make(store)
    s.start()
    s.stop()
    s.stop()
    s.push_pcm(tone(300, 1.0))
    assert s.snapshot().state == "ended"


def test_create_call_failure_starts_nothing():
    class DeadStore:
        def create_call(self, *a, **k):
            raise StoreError("the database file x is locked")

    s = VoiceSession(DeadStore(), FakeSTT(), endpointer)
    with pytest.raises(StoreError):
        s.start()
    assert not s.running


def test_pii_is_redacted_before_it_is_stored_or_announced(store):
    from core.privacy.pii import Redactor

    stt = FakeSTT(["my card number is four one one one one one one one one one one one one one one one"])
    s = VoiceSession(store, stt, endpointer, redact=Redactor())
    call_id = s.start()
    feed(s, bursts(1))
    s.stop()
    assert [x.text for x in store.segments(call_id)] == ["my card number is [CARD]"]
    assert all("one one one one" not in getattr(e, "text", "") for e in drain(s))


@pytest.mark.parametrize(
    "lines",
    [
        ["my card number is 4111", "1111", "1111.", "1111"],
        ["my card number is four one one one", "one one one one", "one one one one", "one one one one"],
        ["my card number is", "4111 1111", "1111 1111"],
    ],
)
def test_a_card_number_read_out_over_several_utterances_is_never_stored_in_clear(store, lines):
    from core.privacy.pii import Redactor

    s = VoiceSession(store, FakeSTT(lines), endpointer, redact=Redactor())
    call_id = s.start()
    feed(s, bursts(len(lines)))
    s.stop()
    stored = [x.text for x in store.segments(call_id)]
    assert len(stored) == len(lines)
    assert not any(ch.isdigit() for line in stored for ch in line), stored
    assert not any("one one" in line for line in stored), stored
    assert stored[0].startswith("my card number is")


# --- sessions sharing one loop (core.pipeline.session_loop) --------------------------------------
@pytest.fixture
def session_loop():
    from core.pipeline.session_loop import SessionLoop

    host = SessionLoop(name="test-sessions")
    yield host
    host.close()


def test_hosted_sessions_share_one_thread_and_keep_every_line(store, session_loop):
    sessions = [
        VoiceSession(store, FakeSTT([f"call {i} line one", f"call {i} line two"]), endpointer, host=session_loop)
        for i in range(3)
    ]
    before = {t.name for t in threading.enumerate()}
    call_ids = [s.start() for s in sessions]
    assert not any(t.name.startswith("voice-session-") for t in threading.enumerate() if t.name not in before)
    audio = bursts(2)
    feeders = [threading.Thread(target=feed, args=(s, audio)) for s in sessions]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    for s in sessions:
        s.stop()
        assert s.snapshot().state == "ended" and not s.running
    for i, call_id in enumerate(call_ids):
        assert [seg.text for seg in store.segments(call_id)] == [f"call {i} line one", f"call {i} line two"]
        assert store.get_call(call_id).status == "ended"


def test_a_slow_final_in_one_hosted_call_does_not_stall_another(store, session_loop):
    slow = VoiceSession(store, FakeSTT(["slow"], delay_s=1.0), endpointer, host=session_loop)
    fast = VoiceSession(store, FakeSTT(["fast"]), endpointer, host=session_loop)
    slow.start(), fast.start()
    audio = bursts(1)
    for i in range(0, audio.size, 320):
        slow.push_pcm(audio[i : i + 320])
    time.sleep(0.2)  # its utterance has ended: its final is being waited for (1 s)
    assert not slow.wait_idle(0.01) and not slow.snapshot().segments
    started = time.monotonic()
    feed(fast, bursts(1))  # the shared loop is free: this call goes on meanwhile
    assert time.monotonic() - started < 0.8
    assert [s.text for s in fast.snapshot().segments] == ["fast"]
    assert slow.wait_idle(5)
    assert [s.text for s in slow.snapshot().segments] == ["slow"]
    slow.stop(), fast.stop()


def test_a_hosted_call_that_crashes_fails_alone(store, session_loop):
    def broken_endpointer():
        raise RuntimeError("endpointer could not start")

    broken = VoiceSession(store, FakeSTT(), broken_endpointer, host=session_loop)
    healthy = VoiceSession(store, FakeSTT(["still here"]), endpointer, host=session_loop)
    broken_id, healthy_id = broken.start(), healthy.start()
    assert broken._done.wait(5)
    assert store.get_call(broken_id).status == "failed"
    feed(healthy, bursts(1))
    healthy.stop()
    assert [s.text for s in store.segments(healthy_id)] == ["still here"]
