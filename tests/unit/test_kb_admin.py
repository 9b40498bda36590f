"""The editable knowledge base: validation, changes reaching search and speech, seeding, re-index."""

import threading
from pathlib import Path

import pytest

from core.kb.admin import ArticleDraft, KBValidationError, KnowledgeBase, seed_from_pack
from core.kb.lexical import LexicalIndex
from core.kb.pack import load_pack
from core.speech.stt.refresh import SpeechModelRefresher, SwappableEngine
from core.store import ArticleRecord
from tests.fakes import FakeSTT

PACK = load_pack(Path(__file__).resolve().parents[2] / "packs" / "bank")
PARROT = ArticleDraft(
    "Parrot insurance",
    "## Cover\nWe insure parrots against zeppelin accidents and feather loss.",
    ("pets, Insurance",),
    ("card_lost_stolen",),
)


class RecordingSpeech:
    """Stands in for the speech refresher: remembers what it was asked to rebuild from."""

    def __init__(self):
        self.scheduled: list[list[str]] = []

    def schedule(self, texts):
        self.scheduled.append(list(texts))

    def status(self):
        return None


@pytest.fixture
def kb(store):
    seed_from_pack(store, PACK)
    index = LexicalIndex(PACK.articles)
    return KnowledgeBase(store, index, KnowledgeBase.intent_names(PACK), RecordingSpeech())


def titles(hits):
    return [h.chunk.title for h in hits]


def test_first_start_seeds_the_pack_once_and_never_undoes_edits(store):
    assert seed_from_pack(store, PACK) == len(PACK.articles) == 42
    first = PACK.articles[0]
    store.save_articles([ArticleRecord(first.id, first.title, "Edited by a supervisor.")])
    store.delete_article(PACK.articles[1].id)
    assert seed_from_pack(store, PACK) == 0  # a restart: edits and deletes stay
    assert store.get_article(first.id).body == "Edited by a supervisor."
    assert store.get_article(PACK.articles[1].id) is None
    assert len(store.list_articles()) == 41


def test_created_article_is_searchable_at_once_and_rebuilds_speech(kb):
    assert "Parrot insurance" not in titles(kb.playground("is my parrot covered"))
    saved = kb.save(PARROT)
    assert saved.id == "parrot-insurance" and saved.tags == ("pets", "insurance")
    assert titles(kb.playground("is my parrot covered by insurance"))[0] == "Parrot insurance"
    assert any("zeppelin accidents" in t for t in kb.speech.scheduled[-1])
    assert len(kb.articles()) == 43 and kb.articles("zeppelin")[0].title == "Parrot insurance"
    assert kb.articles(tag="pets") == [saved]


def test_edit_replaces_the_indexed_text_and_delete_removes_it(kb):
    saved = kb.save(PARROT)
    kb.save(ArticleDraft("Parrot and hamster insurance", "Hamsters are insured too.", id=saved.id))
    assert kb.get(saved.id).title == "Parrot and hamster insurance"
    hits = kb.playground("insure my hamster")
    assert titles(hits)[0] == "Parrot and hamster insurance"
    assert "zeppelin" not in hits[0].chunk.text  # the old body is gone from the index
    assert kb.delete(saved.id) is True
    assert "Parrot and hamster insurance" not in titles(kb.playground("insure my hamster"))
    assert kb.get(saved.id) is None and len(kb.articles()) == 42
    assert not any("Hamsters" in t for t in kb.speech.scheduled[-1])


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        (ArticleDraft("", "Body."), "a title is required"),
        (ArticleDraft("Title", "   "), "the body is empty"),
        (ArticleDraft("Title", "x" * 100_001), "the body is 100,001 characters; the limit is 100,000"),
        (ArticleDraft("report a LOST or stolen card", "Body."), "an article titled 'Report a lost or stolen card' already exists"),
        (ArticleDraft("Title", "Body.", intents=("buy_a_boat",)), "unknown intent 'buy_a_boat'"),
        (ArticleDraft("Title", "Body.", tags=tuple(f"t{i}" for i in range(21))), "21 tags; the limit is 20"),
        (ArticleDraft("Title", "Body.", id="no spaces/allowed"), "is not valid"),
    ],
)
def test_invalid_articles_are_refused_with_a_reason_and_change_nothing(kb, draft, message):
    before = kb.store.list_articles()
    with pytest.raises(KBValidationError) as err:
        kb.save(draft)
    assert any(message in e for e in err.value.errors), err.value.errors
    assert kb.store.list_articles() == before and kb.speech.scheduled == []


def test_renaming_an_article_to_its_own_title_in_another_case_is_allowed(kb):
    saved = kb.save(PARROT)
    assert kb.save(ArticleDraft("PARROT insurance", PARROT.body, id=saved.id)).title == "PARROT insurance"


def test_reindex_reports_progress_and_drops_articles_deleted_elsewhere(kb):
    saved = kb.save(PARROT)
    kb.store.delete_article(saved.id)  # e.g. another process
    seen: list[float] = []
    assert kb.reindex(seen.append) == 42
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 42
    assert "Parrot insurance" not in titles(kb.playground("parrot insurance"))


def test_speech_model_is_rebuilt_once_after_a_burst_of_edits_and_new_utterances_use_it():
    old, new = FakeSTT(["heard with the old model"]), FakeSTT(["heard with the new model"])
    engine = SwappableEngine(old)
    built: list[list[str]] = []
    gate = threading.Event()

    def build(texts):
        gate.wait(5)
        built.append(texts)
        return new

    refresher = SpeechModelRefresher(build, engine.swap, debounce_s=0.05)
    in_flight = engine.open()  # an utterance under way keeps its model
    for n in range(5):
        refresher.schedule([f"edit {n}"])
    assert refresher.status().state == "pending"
    gate.set()
    assert refresher.wait(5)
    assert built == [["edit 4"]]  # debounced: one build, from the latest text
    status = refresher.status()
    assert status.state == "ready" and status.builds == 1 and "speech model ready" in status.message
    assert in_flight.finish().text == "heard with the old model"
    assert engine.open().finish().text == "heard with the new model"
    refresher.close()


def test_a_failed_speech_rebuild_keeps_the_previous_model():
    old = FakeSTT()
    engine = SwappableEngine(old)

    def build(texts):
        raise ValueError("no in-vocabulary text to build a language model from")

    refresher = SpeechModelRefresher(build, engine.swap, debounce_s=0.0)
    refresher.schedule([])
    assert refresher.wait(5)
    assert refresher.status().state == "failed" and "previous one stays in use" in refresher.status().message
    assert engine.current is old
    refresher.close()


def test_replaced_speech_models_built_here_are_deleted_and_others_kept(tmp_path):
    from types import SimpleNamespace

    from core.speech.stt.refresh import ModelFiles

    shared = tmp_path / "domain-shared.lm"
    shared.write_text("built by another process")
    files = ModelFiles(tmp_path)
    mine = tmp_path / "domain-mine.lm"
    mine.write_text("built after start")
    newest = SimpleNamespace(lm_path=tmp_path / "domain-newest.lm", dict_path=None)
    newest.lm_path.write_text("in use")
    files.discard(SimpleNamespace(lm_path=shared, dict_path=None), newest)
    files.discard(SimpleNamespace(lm_path=mine, dict_path=None), newest)
    files.discard(newest, newest)  # the same text rebuilt: still in use
    assert shared.exists() and not mine.exists() and newest.lm_path.exists()


@pytest.mark.slow
def test_a_kb_edit_gives_the_live_recogniser_a_model_that_knows_the_new_words(tmp_path):
    """The neural recogniser's domain vocabulary and the fallback's language model both
    learn the words of a new article."""
    from core.config import Settings
    from core.providers.speech import neural_engines, speech_floor
    from core.services import build_services
    from tests.conftest import SHARED_CACHE, silence

    services = build_services(Settings(data_dir=tmp_path, cache_dir=SHARED_CACHE))
    floor, (neural,) = speech_floor(services.stt), neural_engines(services.stt)
    before = floor.lm_path
    assert "zeppelin" not in floor.dict_path.read_text().split()
    assert "pet" not in neural.bias.words
    services.knowledge.speech.debounce_s = 0.0
    services.knowledge.save(ArticleDraft(
        "Pet cover", "A pet is covered from day one. Pet vet bills and a lost pet's search costs are paid.",
        (), (),
    ))
    services.knowledge.save(PARROT)
    assert services.knowledge.speech.wait(120)
    assert services.knowledge.speech_status().state == "ready"
    assert "pet" in neural.bias.words  # the next decode favours it
    assert floor.lm_path != before  # new utterances decode with the new model
    assert "zeppelin" in {line.split(" ", 1)[0] for line in floor.dict_path.read_text().splitlines()}
    stream = services.stt.open()
    stream.accept(silence(1.0))
    assert stream.finish().audio_ms == 1000.0
    services.knowledge.speech.close()
