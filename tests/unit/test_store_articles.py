"""Store contract for knowledge-base articles (runs on every backend the `store` fixture gives)."""

import pytest

from core.store import ArticleRecord, StoreError


def art(id_: str, title: str, body: str = "Some text.", **kw) -> ArticleRecord:
    return ArticleRecord(id_, title, body, **kw)


def test_articles_round_trip_sorted_by_title(store):
    store.save_articles([art("b", "beta", tags=("x", "y"), intents=("card_freeze",)), art("a", "Alpha", category="cards")])
    got = store.list_articles()
    assert [a.title for a in got] == ["Alpha", "beta"]
    beta = store.get_article("b")
    assert beta.tags == ("x", "y") and beta.intents == ("card_freeze",)
    assert beta.created_at > 0 and beta.updated_at == beta.created_at and beta.deleted_at is None
    assert store.get_article("missing") is None


def test_update_keeps_created_at_and_bumps_updated_at(store):
    first = store.save_articles([art("a", "Alpha")])[0]
    second = store.save_articles([art("a", "Alpha v2", "New text.")])[0]
    got = store.get_article("a")
    assert got.title == "Alpha v2" and got.body == "New text."
    assert got.created_at == first.created_at and second.updated_at >= first.updated_at
    assert len(store.list_articles()) == 1


def test_a_batch_with_a_clashing_title_saves_nothing(store):
    store.save_articles([art("a", "Lost card")])
    with pytest.raises(StoreError, match="nothing in this batch was saved"):
        store.save_articles([art("b", "Fees"), art("c", "LOST CARD")])
    assert [a.id for a in store.list_articles()] == ["a"]


def test_delete_leaves_a_tombstone_and_frees_the_title(store):
    store.save_articles([art("a", "Alpha")])
    assert store.delete_article("a") is True
    assert store.delete_article("a") is False
    assert store.get_article("a") is None and store.list_articles() == []
    assert [a.id for a in store.list_articles(include_deleted=True)] == ["a"]
    assert store.list_articles(include_deleted=True)[0].deleted_at is not None
    store.save_articles([art("z", "Alpha")])  # the title is free again
    store.save_articles([art("a", "Alpha again")])  # saving a deleted id brings it back
    assert {a.id for a in store.list_articles()} == {"a", "z"}
