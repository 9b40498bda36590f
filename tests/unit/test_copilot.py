from pathlib import Path

from core.copilot.live import CallCopilot, active_calls, suggest_replies
from core.kb.lexical import LexicalIndex
from core.kb.pack import load_pack

ROOT = Path(__file__).resolve().parents[2]
PACK = load_pack(ROOT / "packs" / "bank")
KB = LexicalIndex.from_pack(PACK)


class FakeSentiment:
    def score(self, text):
        from types import SimpleNamespace

        neg = any(w in text for w in ("ridiculous", "angry", "terrible"))
        return SimpleNamespace(compound=-0.6 if neg else 0.1, label="negative" if neg else "neutral")


class FakeIntent:
    def predict(self, text):
        from types import SimpleNamespace

        return SimpleNamespace(label="duplicate_charge" if "twice" in text else "other", confidence=0.8)


def test_copilot_follows_a_call_from_the_store(store):
    call = store.create_call("talk")
    cop = CallCopilot(call.id, store, KB, FakeIntent(), FakeSentiment())
    assert cop.refresh().articles == ()
    store.add_segment(call.id, "caller", "hi i think my card was charged twice for the same purchase", 0, 2000)
    view = cop.refresh()
    assert view.articles[0].article_id == "payment-duplicate-charge"
    assert len(view.articles) <= 3 and view.articles[0].passage and view.articles[0].why
    assert view.intent.label == "duplicate_charge" and view.sentiment[0].label == "neutral"
    assert view.suggestions and all(len(s.split()) >= 5 for s in view.suggestions)
    shown = store.events(call.id, "suggestions_shown")
    assert len(shown) == 1 and shown[0].payload["replies"] == list(view.suggestions)
    # a follow-up on the same topic keeps the same top article (no flicker)
    store.add_segment(call.id, "agent", "I can look into that.", 2100, 3000)
    store.add_segment(call.id, "caller", "it was forty two dollars yesterday", 3100, 4500)
    assert cop.refresh().articles[0].article_id == "payment-duplicate-charge"
    # a new topic switches
    store.add_segment(call.id, "caller", "this is ridiculous and also what are your branch opening hours on saturday", 5000, 8000)
    view = cop.refresh()
    assert view.articles[0].article_id == "branch-hours"
    assert [p.label for p in view.sentiment] == ["neutral", "neutral", "negative"]
    shown = [e.payload["articles"] for e in store.events(call.id, "kb_shown")]
    assert shown[0][0] == "payment-duplicate-charge" and any("branch-hours" in s for s in shown)


def test_active_calls_are_discovered_newest_first(store):
    a = store.create_call("talk")
    b = store.create_call("browser")
    done = store.create_call("talk")
    store.end_call(done.id)
    assert [c.id for c in active_calls(store, 60)] == [b.id, a.id]


def test_suggestions_come_from_the_passages():
    hits = KB.search("how do i freeze my card", k=3)
    from core.copilot.live import _hit_to_surfaced

    arts = [_hit_to_surfaced(h) for h in hits]
    sugg = suggest_replies(arts)
    assert sugg
    words = {w.lower().strip(".,") for a in arts for w in a.passage.split()}
    assert all(sum(w.lower().strip(".,") in words for w in s.split()) >= len(s.split()) // 2 for s in sugg)


class LoadingIntent(FakeIntent):
    """Predicts None (still loading) until ``ready`` is set."""

    ready = False

    def predict(self, text):
        return super().predict(text) if self.ready else None


def test_intent_appears_once_the_model_has_loaded_without_a_new_utterance(store):
    call = store.create_call("talk")
    model = LoadingIntent()
    cop = CallCopilot(call.id, store, KB, model, FakeSentiment())
    store.add_segment(call.id, "caller", "my card was charged twice", 0, 2000)
    assert cop.refresh().intent is None
    model.ready = True
    view = cop.refresh()  # nothing new was said
    assert view.intent is not None and view.intent.label == "duplicate_charge"
