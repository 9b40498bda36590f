"""Call recording: the caller's audio as a 16 kHz mono 16-bit WAV file per call.

Off by default (``VC_RECORD_CALLS``); when on, the pages that start calls show a
consent notice and the Calls page plays the file back.
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path

from core.privacy.files import private_dir, private_file
from core.speech.audio import PIPELINE_SAMPLE_RATE_HZ, Int16Array

SAMPLE_WIDTH_BYTES = 2


def recording_path(recordings_dir: Path, call_id: str) -> Path:
    """Where a call's caller audio is saved."""
    return recordings_dir / f"{call_id}.wav"


class WavRecorder:
    """Appends 16 kHz mono int16 audio to a WAV file; the header is final on close."""

    def __init__(self, path: Path):
        private_dir(path.parent)
        self.path = private_file(path)  # 0600 before the first sample is written
        self._lock = threading.Lock()
        self._wav: wave.Wave_write | None = wave.open(str(path), "wb")  # noqa: SIM115 (open for the call)
        self._wav.setnchannels(1)
        self._wav.setsampwidth(SAMPLE_WIDTH_BYTES)
        self._wav.setframerate(PIPELINE_SAMPLE_RATE_HZ)

    def write(self, pcm: Int16Array) -> None:
        with self._lock:
            if self._wav is not None:
                self._wav.writeframes(pcm.astype("<i2").tobytes())

    def close(self) -> None:
        with self._lock:
            if self._wav is not None:
                self._wav.close()
                self._wav = None


def recorder_factory(recordings_dir: Path):  # type: ignore[no-untyped-def]
    """call id → a recorder writing to ``recordings_dir``."""
    return lambda call_id: WavRecorder(recording_path(recordings_dir, call_id))
