"""Importing articles: each format, previews with per-row errors, and failures that change nothing."""

import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from core.kb.admin import KBValidationError, KnowledgeBase, seed_from_pack
from core.kb.importers import MAX_IMPORT_BYTES, commit_import, preview_import
from core.kb.lexical import LexicalIndex
from core.kb.pack import load_pack

PACK = load_pack(Path(__file__).resolve().parents[2] / "packs" / "bank")


@pytest.fixture
def kb(store):
    seed_from_pack(store, PACK)
    return KnowledgeBase(store, LexicalIndex(PACK.articles), KnowledgeBase.intent_names(PACK))


def upload(name: str, content: bytes | str) -> tuple[str, io.BytesIO]:
    return name, io.BytesIO(content.encode() if isinstance(content, str) else content)


def snapshot(kb):
    return [(a.id, a.title, a.body, a.updated_at) for a in kb.store.list_articles()]


def test_a_folder_of_markdown_files_imports_front_matter_and_title_lines(kb):
    files = [
        upload("pets.md", "---\ntitle: Parrot insurance\ntags: [pets, insurance]\nintents: [card_lost_stolen]\n---\n## Cover\nParrots are covered.\n"),
        upload("boats.md", "# Boat loans\n\nWe lend money for boats.\n"),
    ]
    preview = preview_import(kb, files)
    assert preview.ok, (preview.errors, [r.errors for r in preview.rows])
    assert [(r.where, r.record.title, r.action) for r in preview.rows] == [
        ("pets.md", "Parrot insurance", "add"),
        ("boats.md", "Boat loans", "add"),
    ]
    assert len(kb.articles()) == 42  # a preview saves nothing
    saved = commit_import(kb, preview)
    assert [a.title for a in saved] == ["Parrot insurance", "Boat loans"]
    boats = kb.get("boat-loans")
    assert boats.body == "We lend money for boats." and boats.source == "import:boats.md"
    assert kb.get("parrot-insurance").tags == ("pets", "insurance")
    assert kb.playground("loan for a boat")[0].chunk.title == "Boat loans"


def test_a_zip_of_markdown_files_imports_like_a_folder(kb):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("kb/a.md", "# Boat loans\nWe lend money for boats.")
        z.writestr("kb/b.md", "# Caravan loans\nAnd for caravans.")
        z.writestr("kb/readme.txt", "not an article")
    preview = preview_import(kb, [upload("export.zip", buf.getvalue())])
    assert preview.ok and [r.where for r in preview.rows] == ["export.zip/kb/a.md", "export.zip/kb/b.md"]
    commit_import(kb, preview)
    assert len(kb.articles()) == 44


def test_csv_with_optional_columns_and_an_update_by_id(kb):
    csv_text = (
        "Title,Body,Tags,Intents\n"
        "Boat loans,\"We lend money for boats.\n\n## Rates\nFrom 6%.\",loans; boats,\n"
        "Report a lost or stolen card,Call us at once.,cards,card_lost_stolen\n"
    )
    rows = preview_import(kb, [upload("kb.csv", csv_text)]).rows
    assert rows[0].errors == () and rows[0].record.tags == ("loans", "boats")
    # the second title exists already: without an id it is a duplicate, not an update
    assert rows[1].where == "kb.csv line 6"  # the first row's body spans lines 2-5
    assert rows[1].errors == ("an article titled 'Report a lost or stolen card' already exists",)
    with_id = "id,title,body\ncard-lost-stolen,Report a lost or stolen card,Call us at once.\n"
    preview = preview_import(kb, [upload("kb.csv", with_id)])
    assert preview.ok and preview.rows[0].action == "update"
    commit_import(kb, preview)
    assert kb.get("card-lost-stolen").body == "Call us at once." and len(kb.articles()) == 42


def test_json_list_of_objects(kb):
    data = [{"title": "Boat loans", "body": "We lend money for boats.", "tags": ["loans"]}, {"title": "Caravan loans", "body": "Yes."}]
    preview = preview_import(kb, [upload("kb.json", json.dumps({"articles": data}))])
    assert preview.ok and [r.record.title for r in preview.rows] == ["Boat loans", "Caravan loans"]


def test_wrong_csv_columns_name_the_expected_and_found_columns_and_change_nothing(kb):
    before = snapshot(kb)
    preview = preview_import(kb, [upload("faq.csv", "question,answer\nHow?,Like this.\n")])
    assert not preview.ok and preview.rows == ()
    assert preview.errors == (
        "faq.csv has the wrong columns: expected title, body (optional: id, tags, intents, category); "
        "found question, answer",
    )
    with pytest.raises(KBValidationError):
        commit_import(kb, preview)
    assert snapshot(kb) == before


def test_bad_encoding_names_the_file_and_line(kb):
    latin1 = "title,body\nCaf\u00e9 hours,Open daily.\n".encode("latin-1")
    preview = preview_import(kb, [upload("cafe.csv", latin1)])
    assert preview.errors == ("cafe.csv is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8 and import it again",)
    assert not preview.ok


class CountingReader(io.RawIOBase):
    """A 50 MB file that counts the bytes anyone reads from it."""

    size = 50 * 1024 * 1024

    def __init__(self):
        self.bytes_read = 0

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.size if n < 0 else min(n, self.size)
        self.bytes_read += n
        return b"a" * n


def test_a_50_mb_file_is_refused_quickly_without_being_read(kb):
    big = CountingReader()
    t = time.perf_counter()
    preview = preview_import(kb, [("huge.csv", big)])
    assert time.perf_counter() - t < 0.5
    assert big.bytes_read == 0
    assert preview.errors == ("huge.csv is 50.0 MB; an import can be at most 10.0 MB: split it into smaller files",)
    assert not preview.ok and len(kb.articles()) == 42


def test_a_50_mb_file_on_disk_is_refused_by_its_size(kb, tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: no time spent writing it
    with open(path, "rb") as fh:
        preview = preview_import(kb, [("huge.json", fh)])
        assert fh.tell() == 0
    assert "50.0 MB" in preview.errors[0]


def test_several_files_are_limited_together(kb):
    half = b"x" * (MAX_IMPORT_BYTES // 2 + 1)
    preview = preview_import(kb, [upload("a.md", half), upload("b.md", half)])
    assert preview.errors and "the 2 files are 10.0 MB" in preview.errors[0]


def test_duplicate_titles_in_the_file_and_against_the_kb_are_per_row_errors(kb):
    data = [
        {"title": "Boat loans", "body": "One."},
        {"title": "BOAT LOANS", "body": "Two."},
        {"title": "Report a lost or stolen card", "body": "Three."},
        {"title": "Caravan loans", "body": "Fine."},
    ]
    before = snapshot(kb)
    preview = preview_import(kb, [upload("kb.json", json.dumps(data))])
    assert [r.errors for r in preview.rows] == [
        (),
        ("duplicate title 'BOAT LOANS' (also item 1 of this batch)",),
        ("an article titled 'Report a lost or stolen card' already exists",),
        (),
    ]
    assert preview.problems == 2 and not preview.ok
    with pytest.raises(KBValidationError):
        commit_import(kb, preview)
    assert snapshot(kb) == before  # nothing half-imported


def test_row_level_problems_are_reported_per_row(kb):
    data = [
        {"title": "No body"},
        {"body": "No title"},
        "just a string",
        {"title": "Boat loans", "body": "Ok.", "intents": ["buy_a_boat"], "colour": "blue"},
    ]
    rows = preview_import(kb, [upload("kb.json", json.dumps(data))]).rows
    assert [r.where for r in rows] == ["kb.json item 1", "kb.json item 2", "kb.json item 3", "kb.json item 4"]
    assert rows[0].errors == ("the body is empty",)
    assert rows[1].errors == ("a title is required",)
    assert rows[2].errors[0] == "is a str, not an object"
    assert any("unknown field 'colour'" in e for e in rows[3].errors)
    assert any("unknown intent 'buy_a_boat'" in e for e in rows[3].errors)


def test_malformed_files_give_clear_errors(kb):
    cases = {
        "broken.json": ("[{\"title\": ", "broken.json is not valid JSON: Expecting value (line 1, column 12)"),
        "object.json": ('{"title": "x"}', "object.json must hold a list of articles"),
        "empty.csv": ("", "empty.csv is empty: expected a header row"),
        "notes.txt": ("hello", "notes.txt: unsupported file type"),
        "bad.zip": (b"PK not really", "bad.zip is not a valid .zip file"),
    }
    for name, (content, message) in cases.items():
        preview = preview_import(kb, [upload(name, content)])
        assert preview.errors and preview.errors[0].startswith(message), preview.errors
    md = preview_import(kb, [upload("untitled.md", "Just text, no title.")])
    assert md.rows[0].errors == ("no title: start the file with a '# Title' line or front matter with 'title:'",)


def test_a_conflict_created_after_the_preview_stops_the_whole_import(kb):
    preview = preview_import(kb, [upload("kb.json", json.dumps([{"title": "Boat loans", "body": "A."}, {"title": "Caravan loans", "body": "B."}]))])
    assert preview.ok
    kb.save(preview.rows[1].draft)  # someone else adds "Caravan loans" meanwhile
    before = snapshot(kb)
    with pytest.raises(KBValidationError, match="already exists"):
        commit_import(kb, preview)
    assert snapshot(kb) == before
