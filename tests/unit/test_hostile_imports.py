# ruff: noqa: F811 - the kb fixture is imported from test_kb_import and named in test arguments
"""Hostile knowledge imports: each file gets a message, never a traceback, a memory blow-up
or minutes of CPU (issue: hostile input and hard faults, defects 1, 3, 4 and 8)."""

from __future__ import annotations

import io
import json
import tomllib
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from core.kb import importers
from core.kb.admin import IdMaker, KnowledgeBase
from core.kb.importers import BYTES_PER_MB, MAX_IMPORT_ARTICLES, MAX_IMPORT_BYTES, preview_import
from tests.unit.test_kb_import import kb, upload  # noqa: F401 - the same KB fixture and upload helper

ROOT = Path(__file__).resolve().parents[2]


def alias_bomb(levels: int, width: int = 9) -> str:
    lines = [f"a0: &a0 [{','.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "---\n" + "\n".join(lines) + f"\ntitle: Bomb\ntags: [*a{levels - 1}]\n---\nbody\n"


def only_errors(preview) -> list[str]:
    return [*preview.errors, *(e for r in preview.rows for e in r.errors)]


def test_yaml_aliases_in_front_matter_are_refused_without_expanding_them(kb):
    # the reported file had seven levels (4 GB); five levels of nine already expand to
    # 59,049 stringified labels, tens of MB, and this file is under 400 bytes
    bomb = alias_bomb(levels=5)
    assert len(bomb) < 400
    tracemalloc.start()
    try:
        preview = preview_import(kb, [upload("bomb.md", bomb)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not preview.ok
    assert any("aliases" in e for e in only_errors(preview)), only_errors(preview)
    assert peak < 5 * 1024 * 1024


def test_nested_lists_as_labels_and_oversized_front_matter_are_refused(kb):
    nested = "---\ntitle: Nested\ntags: [[a, b], [c]]\n---\nbody\n"
    long = "---\ntitle: Long\ncategory: " + "x" * 9_000 + "\n---\nbody\n"
    preview = preview_import(kb, [upload("nested.md", nested), upload("long.md", long)])
    nested_errors, long_errors = (list(r.errors) for r in preview.rows)
    assert "'tags' must be text or a list of text" in nested_errors
    assert any("front matter is 9,0" in e and "limit" in e for e in long_errors), long_errors


class CountingSet(set):
    lookups = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.lookups += 1
        return super().__contains__(item)


def test_new_ids_for_many_rows_with_the_same_title_take_linear_work():
    CountingSet.lookups = 0
    maker = IdMaker()
    maker.taken = CountingSet(["article", "article-3"])
    ids = [maker("") for _ in range(5_000)]
    assert ids[:3] == ["article-2", "article-4", "article-5"] and len(set(ids)) == 5_000
    assert CountingSet.lookups <= 2 * 5_000 + 10  # counting up from 2 for every row: 12.5 million


def test_an_import_of_10000_untitled_rows_is_refused_at_the_limit_before_any_row_is_checked(kb, monkeypatch):
    checked = []
    real_plan = KnowledgeBase.plan
    monkeypatch.setattr(KnowledgeBase, "plan", lambda self, drafts, source: checked.append(len(drafts)) or real_plan(self, drafts, source))
    rows = "title,body\n" + ",x\n" * 10_000
    preview = preview_import(kb, [upload("empty.csv", rows)])
    assert checked == [] and any(f"more than {MAX_IMPORT_ARTICLES:,}" in e for e in preview.errors)


def test_a_zip_of_60000_files_is_refused_before_a_member_is_read(kb, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for n in range(MAX_IMPORT_ARTICLES + 1):
            z.writestr(f"{n}.md", "")
    parsed = []
    monkeypatch.setattr(importers, "parse_markdown", lambda *a: parsed.append(a) or pytest.fail("a member was parsed"))
    preview = preview_import(kb, [upload("many.zip", buf.getvalue())])
    assert not parsed and any("5,001 Markdown files" in e for e in preview.errors), preview.errors


def test_untitled_rows_under_the_limit_get_numbered_ids(kb):
    preview = preview_import(kb, [upload("a.csv", "title,body\n" + ",x\n" * 3)])
    assert [r.record.id for r in preview.rows] == ["article", "article-2", "article-3"]


def _zip(member: str, content: bytes, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr(member, content)
    return buf.getvalue()


def _patch_method(data: bytes, method: int) -> bytes:
    """The compression method field of the local and central headers set to ``method``."""
    out = bytearray(data)
    local, central = out.find(b"PK\x03\x04"), out.find(b"PK\x01\x02")
    out[local + 8 : local + 10] = method.to_bytes(2, "little")
    out[central + 10 : central + 12] = method.to_bytes(2, "little")
    return bytes(out)


def _set_encrypted(data: bytes) -> bytes:
    out = bytearray(data)
    local, central = out.find(b"PK\x03\x04"), out.find(b"PK\x01\x02")
    out[local + 6] |= 1
    out[central + 8] |= 1
    return bytes(out)


ARTICLE = b"# Boat loans\n" + b"We lend money for boats and for every kind of boat. " * 20


def _bad_crc() -> bytes:
    data = bytearray(_zip("a.md", ARTICLE, zipfile.ZIP_STORED))
    at = data.find(b"We lend")
    data[at] ^= 0xFF  # the stored bytes no longer match the CRC
    return bytes(data)


def _corrupt_deflate() -> bytes:
    data = bytearray(_zip("a.md", ARTICLE))
    start = data.find(b"a.md") + 4
    for i in range(start + 2, start + 12):
        data[i] ^= 0x5A
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("bignum.json", '[{"title": ' + "9" * 5_001 + ', "body": "x"}]', "not valid JSON for an import"),
        ("nan.json", '[{"title": NaN, "body": "x"}]', "NaN is not a value"),
        ("inf.json", '[{"title": "x", "body": Infinity}]', "Infinity is not a value"),
        ("bignum.md", "---\ntitle: " + "9" * 5_001 + "\n---\nbody\n", "cannot be read"),
        ("deep.md", "---\ntitle: " + "[" * 3_000 + "]" * 3_000 + "\n---\nbody\n", "nested too deeply"),
        ("crc.zip", _bad_crc(), "damaged"),
        ("encrypted.zip", _set_encrypted(_zip("a.md", ARTICLE, zipfile.ZIP_STORED)), "encrypted"),
        ("deflate64.zip", _patch_method(_zip("a.md", ARTICLE, zipfile.ZIP_STORED), 9), "method that cannot be read"),
        ("deflate.zip", _corrupt_deflate(), "damaged"),
        ("garbage.zip", b"PK\x05\x06" + b"\xff" * 40, "not a valid .zip"),
    ],
)
def test_every_broken_import_file_gets_a_message_naming_it_not_a_traceback(kb, name, content, expected):
    preview = preview_import(kb, [upload(name, content)])
    errors = only_errors(preview)
    assert not preview.ok
    assert any(expected in e for e in errors), errors
    assert all("Traceback" not in e and "/site-packages/" not in e for e in errors)


def test_a_broken_file_does_not_hide_the_good_ones_next_to_it(kb):
    preview = preview_import(kb, [upload("nan.json", '[{"title": NaN}]'),
                                  upload("boats.md", "# Boat loans\nWe lend money for boats.")])
    assert [r.record.title for r in preview.rows] == ["Boat loans"] and len(preview.errors) == 1


def test_uploads_are_refused_by_the_server_above_the_import_limit_and_visitors_see_no_tracebacks():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_IMPORT_BYTES // BYTES_PER_MB
    assert config["client"]["showErrorDetails"] == "none"


def test_json_nan_is_never_an_article_title(kb):
    preview = preview_import(kb, [upload("a.json", json.dumps([{"title": float("nan"), "body": "b"}]))])
    assert not preview.ok and not any(r.record.title == "nan" for r in preview.rows)
