"""Per-utterance caller sentiment (VADER) and its trend over a call.

VADER (``vaderSentiment``; its lexicon ships in the wheel) scores a text from a
lexicon of rated words with rules for negation and intensifiers. Recogniser output is
lowercase with no punctuation, so VADER's capitals and "!" boosts never fire; the
words still carry the sentiment ("this is ridiculous i've been waiting for an hour"
scores negative, "thank you so much that's really helpful" positive).

A few contact-centre adjustments, each measured on call-like utterances:

* banking and service vocabulary VADER rates as sentiment is made neutral: "i'd *like*
  to", "can you *help*", "*please*", "*credit* card", "*interest* rate", "*block* my
  card", "*charged*" name the topic, not the caller's mood;
* answer words that open a turn ("no", "yes", "okay") are dropped: "no that's wrong"
  was scored positive (VADER read "no" as negating "wrong"), and a bare "no" negative;
* a handful of complaint phrases VADER has no words for count as negative: long
  waits and holds ("on hold forever"), calling again ("third time i've called"),
  "this is a joke", "waste of time".

The neutral band is wider than VADER's suggested ±0.05 because plain requests pick up
small scores from mildly rated words.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

SentimentLabel = Literal["negative", "neutral", "positive"]
Direction = Literal["improving", "worsening", "steady"]

POSITIVE_ABOVE = 0.25  # compound score (-1..1) above which an utterance is positive
NEGATIVE_BELOW = -0.25
TREND_WINDOW_TURNS = 3  # rolling mean over this many caller turns
TREND_MIN_CHANGE = 0.2  # change of the rolling mean that counts as a direction

# Words VADER rates that in a bank call name the topic or are politeness, not mood.
NEUTRAL_WORDS = frozenset(
    """like likes liked help helps helped helping please want wants wanted
    credit interest save saves saved free secure security safe care share clear
    block blocked blocks cancel cancelled canceled cancels charge charges charged
    dispute disputed pay reward rewards bonus trust
    yes yeah yep okay ok sure""".split()  # noqa: SIM905
)
# Turn-opening answer words: dropped before scoring (a bare answer is neutral).
ANSWER_WORDS = frozenset("no nope nah yes yeah yep yup okay ok sure right alright well so um uh oh".split())  # noqa: SIM905

# Complaint phrases VADER has no words for: replaced by a token with this valence (-4..4).
_CUES: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "cuelongwait",
        -2.0,
        re.compile(
            r"\b(?:on hold|holding|waiting|waited|wait)\b(?:\s+\w+){0,3}?\s+"
            r"(?:forever|ages|an hour|hours|so long|all day|all morning|weeks|twenty minutes|half an hour)\b"
            r"|\b(?:been|kept|keep|put) (?:me )?on hold\b"
        ),
    ),
    (
        "cuerepeat",
        -1.5,
        re.compile(
            r"\b(?:second|third|fourth|fifth|tenth|umpteenth) time\b"
            r"|\b(?:called|calling|rang|phoned) (?:you )?(?:again|so many times|three times|twice|every day)\b"
            r"|\bkeeps? (?:on )?happening\b"
        ),
    ),
    ("cuemockery", -2.0, re.compile(r"\b(?:(?:is|a) joke|(?:are you|you're|you are) (?:kidding|joking))\b")),
    ("cuewaste", -2.5, re.compile(r"\bwaste of (?:my |our )?time\b")),
)
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Sentiment:
    """VADER compound score (-1 very negative .. 1 very positive) and its label."""

    compound: float
    label: SentimentLabel


def label_for(compound: float) -> SentimentLabel:
    """The label of a compound score (the neutral band is NEGATIVE_BELOW..POSITIVE_ABOVE)."""
    if compound > POSITIVE_ABOVE:
        return "positive"
    if compound < NEGATIVE_BELOW:
        return "negative"
    return "neutral"


class SentimentScorer:
    """VADER with the contact-centre adjustments above; safe to share between threads.

    Raises:
        ImportError: ``vaderSentiment`` is not installed (the message says how).
    """

    def __init__(self) -> None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as exc:
            raise ImportError("sentiment needs `pip install vaderSentiment`") from exc
        self._vader = SentimentIntensityAnalyzer()
        lexicon: dict[str, float] = self._vader.lexicon
        for word in NEUTRAL_WORDS:
            # removed, not zeroed: "no help" then still reads as VADER's negative "no"
            lexicon.pop(word, None)
        for token, valence, _ in _CUES:
            lexicon[token] = valence

    def score(self, text: str) -> Sentiment:
        """Score one utterance (transcript or typed text)."""
        prepared = prepare(text)
        if not prepared:
            return Sentiment(0.0, "neutral")
        compound = float(self._vader.polarity_scores(prepared)["compound"])
        return Sentiment(compound, label_for(compound))


def prepare(text: str) -> str:
    """Lowercase words, opening answer words dropped, complaint phrases as cue tokens."""
    tokens = _WORD.findall(text.lower().replace("\u2019", "'"))
    while tokens and tokens[0] in ANSWER_WORDS:
        tokens.pop(0)
    prepared = " ".join(tokens)
    for token, _, pattern in _CUES:
        prepared = pattern.sub(f" {token} ", prepared)
    return " ".join(prepared.split())


_default: SentimentScorer | None = None
_default_lock = threading.Lock()


def score(text: str) -> Sentiment:
    """Score one utterance with a process-wide :class:`SentimentScorer`."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SentimentScorer()
    return _default.score(text)


# --- trend ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrendPoint:
    """The trend after one more caller turn.

    Attributes:
        turns: caller turns so far.
        latest: compound score of the latest turn.
        mean: rolling mean over the last ``window`` turns.
        change: mean of the latest turns (up to ``window``, never the first) minus the
            mean of up to ``window`` turns before them.
        direction: ``improving``/``worsening`` when ``change`` reaches the threshold.
    """

    turns: int
    latest: float
    mean: float
    change: float
    direction: Direction


class SentimentTrend:
    """Rolling sentiment over a call's caller turns: is the caller calming down or not?

    Args:
        window: turns in the rolling mean.
        min_change: change of the rolling mean (against the turns before the window) that
            counts as improving or worsening.
    """

    def __init__(self, window: int = TREND_WINDOW_TURNS, min_change: float = TREND_MIN_CHANGE):
        if window < 1:
            raise ValueError("window must be at least one turn")
        self.window = window
        self.min_change = min_change
        self._scores: list[float] = []

    @classmethod
    def of(cls, scores: Iterable[float | Sentiment], **kwargs: Any) -> SentimentTrend:
        """A trend over existing scores (compound values or :class:`Sentiment`)."""
        trend = cls(**kwargs)
        for s in scores:
            trend.add(s)
        return trend

    def add(self, value: float | Sentiment) -> TrendPoint:
        """Add the next caller turn's score; returns the updated trend."""
        compound = value.compound if isinstance(value, Sentiment) else float(value)
        self._scores.append(max(-1.0, min(1.0, compound)))
        return self.point()

    def point(self) -> TrendPoint:
        """The trend now (steady, mean 0 before any turn)."""
        n = len(self._scores)
        if n == 0:
            return TrendPoint(0, 0.0, 0.0, 0.0, "steady")
        # The window ends at the latest turn; while the call is short it starts after the
        # first turn, so the first turn(s) are always there to compare with.
        split = max(1, n - self.window)
        recent = self._scores[split:]
        earlier = self._scores[max(0, split - self.window) : split]
        change = _mean(recent) - _mean(earlier) if recent else 0.0
        mean = _mean(self._scores[-self.window :])
        direction: Direction = "steady"
        if change >= self.min_change:
            direction = "improving"
        elif change <= -self.min_change:
            direction = "worsening"
        return TrendPoint(n, self._scores[-1], mean, change, direction)

    @property
    def mean(self) -> float:
        """Rolling mean of the last ``window`` turns."""
        return self.point().mean

    @property
    def direction(self) -> Direction:
        return self.point().direction

    def __len__(self) -> int:
        return len(self._scores)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
