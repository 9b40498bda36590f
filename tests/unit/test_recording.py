"""Call recording: the caller's audio is saved per call only when asked for."""

import wave

import numpy as np

from core.pipeline.recording import recorder_factory, recording_path
from core.pipeline.session import VoiceSession
from core.pipeline.vad import EndpointConfig, Endpointer, EnergyFrameClassifier
from tests.conftest import silence, tone
from tests.fakes import FakeSTT

CFG = EndpointConfig(
    speech_start_ms=60, end_of_utterance_silence_ms=300, min_speech_ms=150, max_utterance_ms=8000, pre_roll_ms=150
)


def _run(store, recorder=None):
    session = VoiceSession(store, FakeSTT(["my card is lost"]), lambda: Endpointer(CFG, EnergyFrameClassifier(-35)),
                           recorder=recorder)
    call_id = session.start()
    audio = np.concatenate([silence(0.3), tone(300, 0.8), silence(0.9)])
    for i in range(0, audio.size, 320):
        session.push_pcm(audio[i : i + 320])
    assert session.wait_idle(20)
    session.stop()
    return call_id


def test_caller_audio_is_saved_as_a_16k_mono_wav_when_recording_is_on(store, tmp_path):
    call_id = _run(store, recorder_factory(tmp_path / "recordings"))
    with wave.open(str(recording_path(tmp_path / "recordings", call_id))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert abs(wav.getnframes() / 16000 - 2.0) < 0.05  # every second the caller sent
    assert [s.text for s in store.segments(call_id)] == ["my card is lost"]


def test_nothing_is_saved_when_recording_is_off(store, tmp_path):
    _run(store)
    assert not (tmp_path / "recordings").exists()
