"""Caller sentiment on recogniser-style text (lowercase, no punctuation) and its trend."""

from __future__ import annotations

import pytest

pytest.importorskip("vaderSentiment", reason="vaderSentiment not installed")

from core.copilot.sentiment import (  # noqa: E402
    Sentiment,
    SentimentScorer,
    SentimentTrend,
    label_for,
    prepare,
    score,
)


@pytest.fixture(scope="module")
def scorer() -> SentimentScorer:
    return SentimentScorer()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        # the three anchors
        ("this is ridiculous i've been waiting for an hour", "negative"),
        ("thank you so much that's really helpful", "positive"),
        ("i want to check my balance", "neutral"),
        # plain requests stay neutral although VADER rates like/help/please/credit/block
        ("i'd like to open a savings account", "neutral"),
        ("can you help me", "neutral"),
        ("please block my card", "neutral"),
        ("what's the interest rate on the credit card", "neutral"),
        ("i've been charged twice", "neutral"),
        ("why was my card declined", "neutral"),
        # answers on their own are neutral; "no" opening a turn no longer flips "wrong"
        ("no", "neutral"),
        ("yes please", "neutral"),
        ("okay", "neutral"),
        ("no no no that's wrong", "negative"),
        ("no that's everything thank you", "positive"),
        # complaint phrases VADER has no words for
        ("i have been on hold forever", "negative"),
        ("this is the third time i've called about this", "negative"),
        ("this is a joke", "negative"),
        ("what a waste of time", "negative"),
        # VADER's own lexicon and negation still work without punctuation
        ("i am not happy with this service", "negative"),
        ("you people are useless", "negative"),
        ("that's no help at all", "negative"),
        ("brilliant that's sorted thanks", "positive"),
        ("you've been really helpful", "positive"),
    ],
)
def test_call_utterances(scorer, text, label):
    result = scorer.score(text)
    assert result.label == label, (text, result.compound, prepare(text))


def test_scores_are_graded(scorer):
    mild = scorer.score("i'm not happy").compound
    strong = scorer.score("this is ridiculous i've been waiting for an hour").compound
    assert -1.0 <= strong < mild < -0.25
    assert scorer.score("great that's perfect thank you so much").compound > 0.8


def test_written_text_scores_like_its_transcript(scorer):
    written = scorer.score("No, that's wrong!").label
    spoken = scorer.score("no that's wrong").label
    assert written == spoken == "negative"


def test_empty_and_module_level_score(scorer):
    assert scorer.score("") == Sentiment(0.0, "neutral")
    assert scorer.score("um uh") == Sentiment(0.0, "neutral")
    assert score("thank you so much that's really helpful") == scorer.score(
        "thank you so much that's really helpful"
    )


def test_label_thresholds():
    assert label_for(0.26) == "positive" and label_for(-0.26) == "negative"
    assert label_for(0.2) == label_for(-0.2) == label_for(0.0) == "neutral"


# --- trend ----------------------------------------------------------------------------------
def test_trend_of_a_caller_calming_down():
    trend = SentimentTrend(window=3)
    points = [trend.add(c) for c in (-0.7, -0.5, -0.4, 0.0, 0.4, 0.6)]
    assert [p.turns for p in points] == [1, 2, 3, 4, 5, 6]
    assert points[0].direction == "steady"  # nothing to compare with yet
    assert points[-1].direction == "improving"
    assert points[-1].mean == pytest.approx((0.0 + 0.4 + 0.6) / 3)
    assert points[-1].change == pytest.approx((0.0 + 0.4 + 0.6) / 3 - (-0.7 - 0.5 - 0.4) / 3)


def test_trend_of_a_caller_getting_angry():
    trend = SentimentTrend.of([0.4, 0.0, -0.3, -0.6])
    assert trend.direction == "worsening" and len(trend) == 4
    assert trend.mean == pytest.approx((0.0 - 0.3 - 0.6) / 3)


def test_trend_steady_when_changes_are_small():
    trend = SentimentTrend.of([0.1, -0.05, 0.0, 0.1, 0.05, -0.1, 0.0])
    assert trend.direction == "steady"
    assert SentimentTrend().point().direction == "steady" and SentimentTrend().mean == 0.0


def test_trend_over_scored_utterances(scorer):
    turns = [
        "this is ridiculous i've been waiting for an hour",
        "my card was declined twice today",
        "okay i see",
        "thank you so much that's really helpful",
    ]
    trend = SentimentTrend.of(scorer.score(t) for t in turns)
    assert trend.direction == "improving"
    assert trend.point().latest == pytest.approx(scorer.score(turns[-1]).compound)


def test_trend_rejects_an_empty_window():
    with pytest.raises(ValueError):
        SentimentTrend(window=0)
