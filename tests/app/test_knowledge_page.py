"""Knowledge page, driven like a user: create, edit, delete, import, re-index, search playground."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.store.sqlite import SQLiteStore

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SPEECH_REBUILD_TIMEOUT_S = 90


@pytest.fixture
def page(data_dir) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/knowledge.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def store(data_dir):
    s = SQLiteStore(data_dir / "voice_copilot.sqlite3")
    yield s
    s.close()


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} in {[b.label for b in at.button]}"
    return found[0]


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.success, *at.error, *at.warning])


def playground(at: AppTest, sentence: str) -> list[str]:
    """Titles the search playground shows for ``sentence``, best first."""
    at.text_input(key="kb_try").input(sentence).run()
    return [m.value.split(". ", 1)[1].split("**")[0] for m in at.markdown if m.value.startswith("**") and ". " in m.value]


def test_lists_the_pack_articles_on_first_start_and_shows_the_speech_model(page, store):
    assert len(store.list_articles()) == 42
    assert "42 of 42 articles" in texts(page)
    assert "Speech model: speech model ready" in texts(page)
    page.text_input(key="kb_filter").input("overdraft").run()
    assert "of 42 articles" in texts(page) and "42 of 42" not in texts(page)


def test_create_an_article_the_copilot_finds_and_the_speech_model_learns(page, store):
    page.text_input(key="kb-new-0-title").input("Parrot insurance")
    page.text_area(key="kb-new-0-body").input("## Cover\nWe insure parrots against zeppelin accidents.")
    page.text_input(key="kb-new-0-tags").input("pets, insurance")
    page.multiselect(key="kb-new-0-intents").select("card_lost_stolen")
    button(page, "Create article").click().run()
    assert not page.exception and "Saved “Parrot insurance”" in texts(page)
    saved = store.get_article("parrot-insurance")
    assert saved.tags == ("pets", "insurance") and saved.intents == ("card_lost_stolen",)
    assert playground(page, "is my parrot covered")[0] == "Parrot insurance"
    deadline = time.monotonic() + SPEECH_REBUILD_TIMEOUT_S
    while "rebuilt in" not in texts(page) and time.monotonic() < deadline:
        time.sleep(1)
        page.run()
    assert "Speech model: speech model ready (rebuilt in" in texts(page)


def test_a_duplicate_title_is_refused_and_nothing_is_saved(page, store):
    page.text_input(key="kb-new-0-title").input("REPORT A LOST OR STOLEN CARD")
    page.text_area(key="kb-new-0-body").input("Another copy.")
    button(page, "Create article").click().run()
    assert any("already exists" in e.value for e in page.error)
    assert len(store.list_articles()) == 42


def test_edit_an_article(page, store):
    page.selectbox(key="kb_pick").set_value("card-lost-stolen").run()
    key = [t.key for t in page.text_area if t.key and t.key.startswith("kb-card-lost-stolen")][0]
    page.text_area(key=key).input("## What to do\nBlock the card and send a new one by pigeon.").run()
    button(page, "Save changes").click().run()
    assert "Saved “Report a lost or stolen card”" in texts(page)
    assert "pigeon" in store.get_article("card-lost-stolen").body
    assert playground(page, "send my card by pigeon")[0] == "Report a lost or stolen card"


def test_delete_asks_first_then_removes_the_article(page, store):
    page.selectbox(key="kb_pick").set_value("card-lost-stolen").run()
    button(page, "Delete article").click().run()
    assert any("Delete “Report a lost or stolen card”?" in w.value for w in page.warning)
    button(page, "Cancel").click().run()
    assert store.get_article("card-lost-stolen") is not None
    button(page, "Delete article").click().run()
    button(page, "Yes, delete it").click().run()
    assert "Deleted “Report a lost or stolen card”." in texts(page)
    assert store.get_article("card-lost-stolen") is None and len(store.list_articles()) == 41
    assert "Report a lost or stolen card" not in playground(page, "I lost my card")


def test_import_a_csv_after_a_preview(page, store):
    csv = b"title,body,tags\nBoat loans,We lend money for boats.,loans\nCaravan loans,And for caravans.,loans\n"
    page.file_uploader[0].set_value(("loans.csv", csv, "text/csv")).run()
    assert "2 articles found, all valid." in [s.value for s in page.success]
    assert len(store.list_articles()) == 42  # the preview saves nothing
    button(page, "Import 2 articles").click().run()
    assert "Imported 2 articles." in texts(page)
    assert {"boat-loans", "caravan-loans"} <= {a.id for a in store.list_articles()}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("faq.csv", b"question,answer\nHow?,Like this.\n", "expected title, body (optional: id, tags, intents, category); found question, answer"),
        ("cafe.csv", "title,body\nCafé,Open.\n".encode("latin-1"), "cafe.csv is not UTF-8 text (byte 0xe9 on line 2)"),
        ("huge.csv", b"title,body\n" + b"x" * (50 * 1024 * 1024), "huge.csv is 50.0 MB; an import can be at most 10.0 MB"),
        ("dupes.json", b'[{"title": "Boat loans", "body": "A"}, {"title": "boat loans", "body": "B"}]', "duplicate title 'boat loans'"),
    ],
)
def test_malformed_imports_explain_why_and_change_nothing(page, store, name, content, message):
    before = store.list_articles()
    page.file_uploader[0].set_value((name, content, "application/octet-stream")).run()
    assert not page.exception
    shown = " ".join([*(e.value for e in page.error), *(str(d.value) for d in page.dataframe)])
    assert message in shown, shown[:500]
    importing = [b for b in page.button if b.label.startswith("Import ")]
    assert all(b.disabled for b in importing)
    assert store.list_articles() == before


def test_reindex_shows_progress_to_the_end(page):
    button(page, "Re-index search").click().run()
    assert not page.exception
    bars = [e for e in page.get("progress")]
    assert bars and "Re-indexed 42 articles" in bars[-1].proto.text


def test_search_playground_shows_what_the_copilot_would_surface_and_why(page):
    titles = playground(page, "I was charged twice for the same coffee")
    assert titles[0] == "Charged twice for the same purchase"
    assert any(c.value.startswith("Score ") and "why:" in c.value for c in page.caption)
