import warnings

import av
import numpy as np
import pytest

from core.speech.audio import (
    AudioFormatError,
    FrameConverter,
    dbfs,
    mulaw_decode,
    mulaw_encode,
    resample,
    rms,
)


def make_frames(mono: np.ndarray, rate: int = 48000, layout: str = "stereo", fmt: str = "s16", n: int = 960):
    """Split a mono int16 signal into WebRTC-like frames."""
    frames = []
    channels = 2 if layout == "stereo" else 1
    for i in range(0, mono.size - n + 1, n):
        chunk = mono[i : i + n]
        if fmt == "s16":
            data = np.repeat(chunk, channels).reshape(1, -1)
        elif fmt == "s16p":
            data = np.tile(chunk, (channels, 1))
        elif fmt == "fltp":
            data = np.tile(chunk.astype(np.float32) / 32768.0, (channels, 1))
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
        frame.sample_rate = rate
        frames.append(frame)
    return frames


def sine(freq, seconds, rate, level=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


def peak_hz(x, rate):
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return np.argmax(spectrum) * rate / x.size


def convert_all(frames):
    conv = FrameConverter()
    return np.concatenate([conv.convert(f) for f in frames] + [conv.flush()])


@pytest.mark.parametrize("fmt", ["s16", "s16p", "fltp"])
@pytest.mark.parametrize("layout", ["stereo", "mono"])
def test_48k_frames_become_16k_mono_with_same_pitch_and_duration(fmt, layout):
    frames = make_frames(sine(440, 2.0, 48000), fmt=fmt, layout=layout)
    out = convert_all(frames)
    assert out.dtype == np.int16
    assert abs(out.size - 32000) <= 16  # 2 s at 16 kHz, give or take the filter tail
    assert abs(peak_hz(out, 16000) - 440) < 2
    assert abs(dbfs(out) - dbfs(sine(440, 2.0, 16000))) < 0.5  # level preserved


def test_resampler_removes_content_above_new_nyquist_instead_of_aliasing():
    # 12 kHz at 48 kHz: naive 3:1 decimation folds it to 4 kHz at full level.
    x = sine(12000, 1.0, 48000)
    naive = x[::3]
    assert dbfs(naive) > -10
    out = convert_all(make_frames(x))
    assert dbfs(out[800:-800]) < -50


def test_frame_boundaries_leave_no_clicks():
    out = convert_all(make_frames(sine(1000, 1.0, 48000)))
    core = out[400:-400].astype(np.float64)
    # a clean sine's sample-to-sample step is bounded by 2*pi*f/fs*amplitude
    assert np.max(np.abs(np.diff(core))) <= 2 * np.pi * 1000 / 16000 * 0.5 * 32767 * 1.05


def test_other_rates_and_one_shot_resample_agree():
    x = sine(300, 1.0, 44100)
    out = convert_all(make_frames(x, rate=44100, n=441))
    ref = resample(x, 44100, 16000)
    assert abs(out.size - ref.size) <= 16
    assert abs(peak_hz(out, 16000) - 300) < 2


def test_16k_mono_passes_through_unchanged():
    x = sine(500, 0.5, 16000)
    out = convert_all(make_frames(x, rate=16000, layout="mono", n=320))
    assert np.array_equal(out, x[: out.size])


def test_empty_frame_is_a_clear_error():
    frame = av.AudioFrame(format="s16", layout="stereo", samples=0)
    frame.sample_rate = 48000
    with pytest.raises(AudioFormatError):
        FrameConverter().convert(frame)


def test_nan_samples_are_rejected():
    data = np.full((2, 960), np.nan, dtype=np.float32)
    frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
    frame.sample_rate = 48000
    with pytest.raises(AudioFormatError, match="NaN"):
        FrameConverter().convert(frame)


def test_mulaw_matches_g711_reference_and_round_trips():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop as ref
    x = np.concatenate([np.arange(-32768, 32767, 7, dtype=np.int32)]).astype(np.int16)
    encoded = mulaw_encode(x)
    assert encoded == ref.lin2ulaw(x.tobytes(), 2)
    decoded = mulaw_decode(encoded)
    assert np.array_equal(decoded, np.frombuffer(ref.ulaw2lin(encoded, 2), dtype=np.int16))
    # relative error stays within mu-law's ~3% quantisation for non-tiny samples
    big = np.abs(x.astype(np.int32)) > 1000
    rel = np.abs(decoded.astype(np.int32) - x)[big] / np.abs(x.astype(np.int32))[big]
    assert rel.max() < 0.035


def test_levels():
    assert rms(np.zeros(100, np.int16)) == 0.0
    assert dbfs(np.zeros(100, np.int16)) == -120.0
    full = np.full(1000, 32767, np.int16)
    assert abs(dbfs(full)) < 0.01
    assert abs(dbfs(sine(1000, 1.0, 16000, level=1.0)) + 3.01) < 0.05
