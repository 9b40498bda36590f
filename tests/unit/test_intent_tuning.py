"""Fine-tuning the intent encoder: it separates the intents it is trained on, it saves and
loads, the classifier calibrates on examples the encoder never saw, the app can use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import ConfigError, Settings
from core.copilot import intent
from core.copilot.intent import IntentClassifier
from core.language import embeddings

pytestmark = pytest.mark.skipif(not embeddings.available(), reason="needs torch and MiniLM")

# three card intents the general model places close together (all "my card ... not working")
EXAMPLES = {
    "declined": [
        "my card was declined at the shop", "the payment with my card got refused",
        "the terminal rejected my card", "why does my card keep getting declined",
        "my card payment did not go through", "the store said my card was refused",
    ],
    "swallowed": [
        "the cash machine kept my card", "the atm swallowed my card",
        "my card is stuck inside the atm", "the machine ate my card",
        "the atm did not give my card back", "my card got retained by the cash machine",
    ],
    "broken": [
        "my card is cracked in half", "the chip on my card is damaged",
        "my card is physically broken", "the magnetic strip on my card is worn out",
        "my card snapped", "the card is bent and damaged",
    ],
}


def dataset() -> tuple[list[str], np.ndarray]:
    texts = [t for ts in EXAMPLES.values() for t in ts]
    y = np.array([i for i, ts in enumerate(EXAMPLES.values()) for _ in ts], dtype=np.int64)
    return texts, y


def separation(vectors: np.ndarray, y: np.ndarray) -> float:
    """Mean cosine to the own class centroid minus mean cosine to the other centroids."""
    centroids = np.stack([vectors[y == c].mean(axis=0) for c in np.unique(y)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    sims = vectors @ centroids.T
    own = sims[np.arange(len(y)), y]
    other = (sims.sum(axis=1) - own) / (centroids.shape[0] - 1)
    return float(np.mean(own - other))


@pytest.fixture(scope="module")
def tuned():
    from core.copilot.intent_tuning import fine_tune

    texts, y = dataset()
    return fine_tune(texts, y, 3, epochs=8, seed=0)


def test_fine_tuning_separates_the_intents_it_is_trained_on(tuned):
    texts, y = dataset()
    before = separation(embeddings.get_embedder().embed(texts), y)
    after = separation(tuned.embed(texts), y)
    assert after > before + 0.05, (before, after)
    # the shared model the knowledge base uses is not touched
    assert separation(embeddings.get_embedder().embed(texts), y) == pytest.approx(before, abs=1e-6)


def test_tuned_encoder_saves_and_loads_the_same_vectors(tuned, tmp_path: Path):
    from core.copilot.intent_tuning import TunedEncoder

    tuned.save(tmp_path / "enc")
    loaded = TunedEncoder.load(tmp_path / "enc")
    texts = ["my card was eaten by the atm", "declined again"]
    assert np.allclose(loaded.embed(texts), tuned.embed(texts), atol=1e-5)
    assert loaded.embed([]).shape == (0, 384)
    with pytest.raises(FileNotFoundError, match="not a saved intent encoder"):
        TunedEncoder.load(tmp_path)


def test_classifier_fine_tunes_only_on_examples_kept_out_of_calibration(monkeypatch, tuned):
    seen: list[list[str]] = []

    def fake_fine_tune(texts, y, n, *, epochs, seed):
        seen.append(list(texts))
        return tuned

    monkeypatch.setattr("core.copilot.intent_tuning.fine_tune", fake_fine_tune)
    monkeypatch.setattr(intent, "LARGE_TRAINING_SET", 10)  # one validation split, as for big sets
    texts, y = dataset()
    labels = [list(EXAMPLES)[i] for i in y]
    clf = IntentClassifier(fine_tune_epochs=1).fit(texts, labels)
    assert clf.fine_tuned and len(seen) == 1
    tuned_on = set(seen[0])
    held_out = set(texts) - tuned_on
    assert held_out and len(tuned_on) < len(texts)
    assert clf.heldout.examples == len(held_out)  # calibration used exactly the rest
    assert clf.predict("the atm kept my card").label == "swallowed"


def test_small_training_sets_are_not_fine_tuned(monkeypatch, caplog):
    monkeypatch.setattr("core.copilot.intent_tuning.fine_tune", lambda *a, **k: pytest.fail("fine-tuned"))
    texts, y = dataset()
    clf = IntentClassifier(fine_tune_epochs=2).fit(texts, [list(EXAMPLES)[i] for i in y])
    assert not clf.fine_tuned
    assert "fine-tuning skipped" in caplog.text


def test_settings_refuse_an_intent_encoder_that_is_not_one(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, intent_encoder=tmp_path / "missing")
    with pytest.raises(ConfigError, match="VC_INTENT_ENCODER=.*no config.json"):
        settings.validate_providers()


def test_the_app_trains_the_pack_intents_on_the_tuned_encoder(tuned, tmp_path: Path):
    from core.services import build_services

    tuned.save(tmp_path / "enc")
    services = build_services(Settings(data_dir=tmp_path / "data", intent_encoder=tmp_path / "enc"))
    model = services._train_intent_model()
    assert type(model._embedder).__name__ == "TunedEncoder"
    assert model.predict("i lost my card").best_intent


def test_command_line_reports_bad_input(tmp_path: Path, capsys):
    from core.copilot.intent_tuning import main

    assert main(["--train", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("utterance,label\nhello,greet\n")
    assert main(["--train", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "missing column" in capsys.readouterr().err
