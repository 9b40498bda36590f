"""Fuzzing every parser that takes outside input: knowledge imports (Markdown with front
matter, CSV, JSON, .zip), audio frames and buffers, and PII redaction of any text.

Property for each: it returns or raises its own documented error, never anything else,
and stays within its limits. Bounded in time by the ``fuzz`` profile (tests/conftest.py).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.kb.admin import KnowledgeBase, seed_from_pack
from core.kb.importers import ImportPreview, preview_import
from core.kb.lexical import LexicalIndex
from core.kb.pack import load_pack
from core.privacy.numbers import number_runs
from core.privacy.pii import Redactor, luhn_ok, redact
from core.speech.audio import AudioFormatError, FrameConverter, mulaw_decode, mulaw_encode, resample
from core.store.sqlite import SQLiteStore

PACK = load_pack(Path(__file__).resolve().parents[2] / "packs" / "bank")
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    store = SQLiteStore(tmp_path_factory.mktemp("fuzz") / "kb.sqlite3")
    seed_from_pack(store, PACK)
    return KnowledgeBase(store, LexicalIndex(PACK.articles), KnowledgeBase.intent_names(PACK))


def check_preview(preview: ImportPreview) -> None:
    assert isinstance(preview, ImportPreview)
    for message in [*preview.errors, *(e for r in preview.rows for e in r.errors)]:
        assert isinstance(message, str) and "Traceback" not in message


yaml_scalar = st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=True), st.booleans(), st.none())
yaml_value = st.recursive(yaml_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
front_matter_text = st.one_of(
    st.text(max_size=400),
    st.builds(lambda v: "\n".join(f"{k}: {v!r}" for k, v in v.items()),
              st.dictionaries(st.sampled_from(["title", "tags", "intents", "id", "category", "x"]), yaml_value, max_size=5)),
    st.builds(lambda n, w: "a0: &a0 [x]\n" + "\n".join(f"a{i}: &a{i} [{', '.join([f'*a{i-1}'] * w)}]" for i in range(1, n)),
              st.integers(1, 6), st.integers(1, 6)),
)


@settings(suppress_health_check=SUPPRESS)
@given(front=front_matter_text, body=st.text(max_size=300))
def test_markdown_with_any_front_matter(kb, front, body):
    check_preview(preview_import(kb, [("a.md", io.BytesIO(f"---\n{front}\n---\n{body}".encode()))]))


@settings(suppress_health_check=SUPPRESS)
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".md", ".csv", ".json", ".zip", ".txt"]))
def test_any_bytes_as_any_import_file(kb, data, suffix):
    check_preview(preview_import(kb, [(f"f{suffix}", io.BytesIO(data))]))


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["title", "body", "tags", "id", "zz"]), inner, max_size=5),
    max_leaves=20,
)


@settings(suppress_health_check=SUPPRESS)
@given(value=json_value)
def test_any_json_document(kb, value):
    import json

    check_preview(preview_import(kb, [("a.json", io.BytesIO(json.dumps(value).encode()))]))


@settings(suppress_health_check=SUPPRESS)
@given(rows=st.lists(st.lists(st.text(max_size=20), max_size=7), max_size=20), delimiter=st.sampled_from([",", ";", "\t", "|"]))
def test_any_csv_rows(kb, rows, delimiter):
    import csv

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(["title", "body", "tags"])
    writer.writerows(rows)
    check_preview(preview_import(kb, [("a.csv", io.BytesIO(out.getvalue().encode()))]))


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@settings(suppress_health_check=SUPPRESS)
@given(
    members=st.dictionaries(st.from_regex(r"[a-z0-9/]{1,10}\.md", fullmatch=True), st.binary(max_size=200), min_size=1, max_size=4),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=6),
)
def test_damaged_zip_archives(kb, members, flips):
    data = bytearray(_zip(members))
    for at, mask in flips:
        data[at % len(data)] ^= mask
    check_preview(preview_import(kb, [("a.zip", io.BytesIO(bytes(data)))]))


# --- audio -------------------------------------------------------------------------------
@settings(suppress_health_check=SUPPRESS)
@given(
    fmt=st.sampled_from(["s16", "s16p", "s32", "flt", "fltp", "dbl", "u8"]),
    layout=st.sampled_from(["mono", "stereo"]),
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000, 96000]),
    samples=st.integers(1, 2000),
    seed=st.integers(0, 2**32 - 1),
    poison=st.sampled_from([None, np.nan, np.inf]),
)
def test_any_audio_frame_converts_or_is_refused(fmt, layout, rate, samples, seed, poison):
    frame = av.AudioFrame(format=fmt, layout=layout, samples=samples)
    frame.sample_rate = rate
    rng = np.random.default_rng(seed)
    for plane in frame.planes:
        raw = rng.integers(0, 256, size=len(bytes(plane)), dtype=np.uint8)
        plane.update(raw.tobytes())
    if poison is not None and fmt in ("flt", "fltp"):
        arr = np.frombuffer(bytes(frame.planes[0]), dtype=np.float32).copy()
        arr[0] = poison
        frame.planes[0].update(arr.tobytes())
    try:
        out = FrameConverter().convert(frame)
    except AudioFormatError:
        return
    assert out.dtype == np.int16 and out.size <= samples * 16000 // rate + 16


@given(data=st.binary(max_size=4000))
def test_any_mulaw_bytes_decode_and_round_trip(data):
    pcm = mulaw_decode(data)
    assert pcm.dtype == np.int16 and pcm.size == len(data)
    assert mulaw_decode(mulaw_encode(pcm)).size == len(data)


@given(pcm=st.lists(st.integers(-32768, 32767), max_size=3000), rates=st.sampled_from([(8000, 16000), (48000, 16000), (16000, 22050), (22050, 48000)]))
def test_resampling_any_buffer(pcm, rates):
    out = resample(np.array(pcm, dtype=np.int16), *rates)
    assert out.dtype == np.int16 and abs(out.size - len(pcm) * rates[1] / rates[0]) <= 2


# --- PII -------------------------------------------------------------------------------
digits_and_words = st.lists(
    st.one_of(
        st.from_regex(r"\d{1,6}", fullmatch=True),
        st.sampled_from(["one", "four", "oh", "double", "forty", "eleven", "hundred", "and", "dollars", "card", "pin", "is",
                         "-", ",", ".", "my", "number", "@", "(at)", "dot", "com", "ending", "in"]),
        st.text(alphabet="abcxyz0123456789 .,-@()$:", max_size=12),
    ),
    max_size=40,
).map(" ".join)


@given(text=st.one_of(st.text(max_size=300), digits_and_words))
def test_redaction_of_any_text_never_fails_and_leaves_no_card_number(text):
    out, _ = redact(text)
    for run in number_runs(out):
        assert not (13 <= len(run.digits) <= 19 and luhn_ok(run.digits) and run.groups == (len(run.digits),)), out


@given(lines=st.lists(digits_and_words, max_size=8))
def test_call_redaction_of_any_lines_never_fails(lines):
    r = Redactor(clock=lambda: 0.0)
    for line in lines:
        assert isinstance(r(line), str)
        assert isinstance(r(line, partial=True), str)
