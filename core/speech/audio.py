"""Audio conversion: WebRTC frames to 16 kHz mono int16, mu-law, levels.

WebRTC delivers ``av.AudioFrame`` objects, 48 kHz stereo s16 in 20 ms frames in
practice, but the format is negotiated, so every layout PyAV can produce is handled.
Resampling uses libsoxr (a band-limited polyphase resampler) in streaming mode, so
there are no clicks at frame boundaries and no aliasing from naive decimation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

PIPELINE_SAMPLE_RATE_HZ = 16_000
INT16_FULL_SCALE = 32768.0

Int16Array = npt.NDArray[np.int16]


class AudioFormatError(ValueError):
    """An audio frame or buffer that cannot be interpreted."""


def frame_to_mono_float(frame: Any) -> tuple[npt.NDArray[np.float32], int]:
    """Convert an ``av.AudioFrame`` (any sample format/layout) to mono float32.

    Returns:
        (samples in [-1, 1], sample rate in Hz)

    Raises:
        AudioFormatError: the frame is empty, has an unknown format, or is corrupt.
    """
    try:
        rate = int(frame.sample_rate)
        channels = len(frame.layout.channels)
        fmt = frame.format.name
        planar = bool(frame.format.is_planar)
        data = frame.to_ndarray()
    except Exception as exc:  # PyAV raises many types for corrupt frames
        raise AudioFormatError(f"unreadable audio frame: {exc}") from exc
    if rate <= 0 or channels <= 0:
        raise AudioFormatError(f"audio frame has rate={rate} channels={channels}")
    if data.size == 0:
        raise AudioFormatError("audio frame has no samples")
    chans = data.reshape(channels, -1) if planar else data.reshape(-1, channels).T
    with np.errstate(over="ignore", invalid="ignore"):  # garbage doubles: refused just below
        mono = _mono(chans, fmt)
    if not np.all(np.isfinite(mono)):
        raise AudioFormatError("audio frame contains NaN or infinite samples")
    return mono.astype(np.float32, copy=False), rate


def _mono(chans: npt.NDArray[Any], fmt: str) -> npt.NDArray[np.float32]:
    if fmt.startswith("s16"):
        mono = chans.astype(np.float32).mean(axis=0) / INT16_FULL_SCALE
    elif fmt.startswith("s32"):
        mono = chans.astype(np.float32).mean(axis=0) / 2147483648.0
    elif fmt.startswith("flt") or fmt.startswith("dbl"):
        mono = chans.astype(np.float32).mean(axis=0)
    else:
        raise AudioFormatError(f"unsupported audio sample format {fmt!r}")
    return mono


def float_to_int16(samples: npt.NDArray[np.floating]) -> Int16Array:
    """Clip to [-1, 1] and scale to int16."""
    return np.clip(np.round(np.clip(samples, -1.0, 1.0) * INT16_FULL_SCALE), -32768, 32767).astype(np.int16)


def int16_to_float(samples: Int16Array) -> npt.NDArray[np.float32]:
    return samples.astype(np.float32) / INT16_FULL_SCALE


class StreamResampler:
    """Stateful resampler from any input rate to a fixed output rate, mono.

    The input rate is taken from the first chunk; if it changes mid-stream (a
    renegotiation), the filter is flushed and rebuilt.
    """

    def __init__(self, out_rate_hz: int = PIPELINE_SAMPLE_RATE_HZ, quality: str = "HQ"):
        self.out_rate_hz = out_rate_hz
        self._quality = quality
        self._in_rate: int | None = None
        self._stream: soxr.ResampleStream | None = None

    def process(self, samples: npt.NDArray[np.float32], in_rate_hz: int) -> Int16Array:
        """Resample a chunk of mono float32 samples; returns int16 at ``out_rate_hz``."""
        out_parts: list[npt.NDArray[np.float32]] = []
        if self._in_rate != in_rate_hz:
            if self._stream is not None:
                out_parts.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
            self._in_rate = in_rate_hz
            self._stream = (
                None
                if in_rate_hz == self.out_rate_hz
                else soxr.ResampleStream(
                    in_rate_hz, self.out_rate_hz, 1, dtype="float32", quality=self._quality
                )
            )
        if self._stream is None:
            out_parts.append(samples)
        else:
            out_parts.append(self._stream.resample_chunk(samples.astype(np.float32)))
        out = np.concatenate(out_parts) if len(out_parts) > 1 else out_parts[0]
        return float_to_int16(out)

    def flush(self) -> Int16Array:
        if self._stream is None:
            return np.zeros(0, np.int16)
        tail = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        self._stream = None
        self._in_rate = None
        return float_to_int16(tail)


class FrameConverter:
    """WebRTC ``av.AudioFrame`` → 16 kHz mono int16, one call per frame."""

    def __init__(self, out_rate_hz: int = PIPELINE_SAMPLE_RATE_HZ):
        self._resampler = StreamResampler(out_rate_hz)

    def convert(self, frame: Any) -> Int16Array:
        mono, rate = frame_to_mono_float(frame)
        return self._resampler.process(mono, rate)

    def flush(self) -> Int16Array:
        return self._resampler.flush()


def resample(samples: Int16Array, in_rate_hz: int, out_rate_hz: int) -> Int16Array:
    """One-shot resampling of a whole int16 mono buffer."""
    if in_rate_hz == out_rate_hz:
        return samples.astype(np.int16, copy=False)
    out = soxr.resample(int16_to_float(samples), in_rate_hz, out_rate_hz, quality="HQ")
    return float_to_int16(out)


# --- G.711 mu-law (telephony) ------------------------------------------------------
# As in the ITU-T G.711 reference code: the encoder works on 14-bit magnitudes.
_MULAW_BIAS_14 = 0x21
_MULAW_CLIP_14 = 8159


def _build_mulaw_decode_table() -> Int16Array:
    table = np.zeros(256, dtype=np.int16)
    for code in range(256):
        u = ~code & 0xFF
        t = ((u & 0x0F) << 3) + 0x84
        t <<= (u & 0x70) >> 4
        table[code] = (0x84 - t) if (u & 0x80) else (t - 0x84)
    return table


_MULAW_DECODE = _build_mulaw_decode_table()


def mulaw_encode(samples: Int16Array) -> bytes:
    """Encode int16 PCM to G.711 mu-law bytes (bit-exact with the ITU reference)."""
    v = samples.astype(np.int32) >> 2
    negative = v < 0
    mag = np.minimum(np.where(negative, -v, v), _MULAW_CLIP_14) + _MULAW_BIAS_14
    raw_seg = np.floor(np.log2(mag)).astype(np.int32) - 5
    seg = np.clip(raw_seg, 0, 7)
    mantissa = (mag >> (seg + 1)) & 0x0F
    code = np.where(raw_seg > 7, 0x7F, (seg << 4) | mantissa)  # beyond the top segment
    code = np.where(negative, code ^ 0x7F, code ^ 0xFF)
    return code.astype(np.uint8).tobytes()


def mulaw_decode(data: bytes) -> Int16Array:
    """Decode G.711 mu-law bytes to int16 PCM."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _MULAW_DECODE[codes]


# --- levels -----------------------------------------------------------------------
def rms(samples: Int16Array) -> float:
    """Root-mean-square level, as a fraction of full scale (0..1)."""
    if samples.size == 0:
        return 0.0
    x = samples.astype(np.float64) / INT16_FULL_SCALE
    return float(np.sqrt(np.mean(x * x)))


def dbfs(samples: Int16Array) -> float:
    """RMS level in dB relative to full scale; -120 for digital silence."""
    if samples.size == 0:
        return -120.0
    return float(dbfs_rows(samples.reshape(1, -1))[0])


def dbfs_rows(frames: Int16Array) -> npt.NDArray[np.float64]:
    """:func:`dbfs` of each row of a 2-D block of frames, in one pass."""
    x = frames.astype(np.float64) / INT16_FULL_SCALE
    level = np.sqrt(np.mean(x * x, axis=1))
    return np.where(level <= 1e-6, -120.0, 20.0 * np.log10(np.maximum(level, 1e-6)))


def pcm_bytes(samples: Int16Array) -> bytes:
    return samples.astype("<i2", copy=False).tobytes()
