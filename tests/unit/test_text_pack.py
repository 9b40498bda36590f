from pathlib import Path

import pytest

from core.kb.pack import PackError, load_pack, parse_article
from core.language.text import is_junk, normalize, split_sentences, wer

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("My card was charged $42 twice!", "my card was charged forty two dollars twice"),
        ("Fee is 3% or $2.50", "fee is three percent or two point five zero dollars"),
        ("Call 1,200 times", "call one thousand two hundred times"),
        ("It's the customer's card.", "it's the customer's card"),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize("text", ["", "uh", "um hmm", "[NOISE]", "<sil> mm", "++breath++ uh"])
def test_junk(text):
    assert is_junk(text)


@pytest.mark.parametrize("text", ["yes", "uh my card", "no thanks", "oh no my card"])
def test_not_junk(text):
    assert not is_junk(text)


def test_wer():
    assert wer(["my card is lost"], ["my card is lost"]) == 0
    assert wer(["my card is lost"], ["my car is lost"]) == 0.25
    assert wer(["a b", "c d"], ["a", "c d e"]) == 0.5


def test_split_sentences_strips_markdown():
    text = "## Steps\n- Freeze the card. Then call us.\n1. Order a [new card](x)."
    assert split_sentences(text) == ["Steps", "Freeze the card.", "Then call us.", "Order a new card."]


def test_bank_pack_loads():
    pack = load_pack(ROOT / "packs" / "bank")
    assert len(pack.articles) >= 40
    assert len({a.id for a in pack.articles}) == len(pack.articles)
    assert pack.persona.greeting and pack.phrases and pack.intents and pack.dispositions
    categories = {a.category for a in pack.articles}
    assert {"cards", "payments", "transfers", "accounts", "fees", "security", "branches"} <= categories


def test_fingerprint_changes_with_text(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "a.md").write_text("---\nid: a\ntitle: A\n---\nBody one.")
    f1 = load_pack(tmp_path).fingerprint()
    (kb / "a.md").write_text("---\nid: a\ntitle: A\n---\nBody two.")
    assert load_pack(tmp_path).fingerprint() != f1


@pytest.mark.parametrize(
    "text,match",
    [
        ("no front matter", "front matter"),
        ("---\n: [unbalanced\n---\nbody", "invalid front matter"),
        ("---\ntitle: T\n---\nbody", "'id'"),
        ("---\nid: x\ntitle: T\n---\n", "empty"),
    ],
)
def test_bad_articles_name_the_problem(text, match):
    with pytest.raises(PackError, match=match):
        parse_article(text, "bad.md")


def test_duplicate_ids_rejected(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    for name in ("a.md", "b.md"):
        (kb / name).write_text("---\nid: same\ntitle: T\n---\nBody.")
    with pytest.raises(PackError, match="duplicate"):
        load_pack(tmp_path)
