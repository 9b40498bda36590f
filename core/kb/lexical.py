"""In-memory BM25 search over KB chunks: fast, dependency-free, incremental.

Scoring is Okapi BM25 over each passage (its heading counts as passage text), plus a
bonus of a few IDFs for each query term in the article's title or tags: curated
metadata says more than a passing mention, and adding it outside BM25's saturation keeps
a one-word title match from being drowned by a long body. Query terms come from the
caller's latest turn at full weight and from earlier caller turns at a decaying weight
(more when the latest turn is short), so "how long will that take" after "i was charged
twice" still finds the duplicate charge article. Two small expansions help spoken
queries: a country name also asks for "international"/"abroad", and a word the index has
never seen is matched to an indexed term one edit away ("overdaft" → "overdraft").
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.kb import Chunk, SearchHit
from core.kb.chunking import chunk_article
from core.kb.pack import Article, Pack
from core.language.text import normalize


def _words(text: str) -> list[str]:
    return text.split()


BM25_K1 = 1.2  # term-frequency saturation
BM25_B = 0.75  # body length normalisation
HEADING_WEIGHT = 1.0  # a heading occurrence counts like this many body occurrences
TITLE_BONUS = 1.5  # a query term in the article title adds this many IDFs on top of BM25
TAG_BONUS = 0.5  # same for the article's tags and intent names
PLACE_WEIGHT = 0.8  # weight of "international"/"abroad" added for a country name
HISTORY_WEIGHT = 0.5  # weight of a term from the previous caller turn
FOLLOW_UP_WEIGHT = 0.8  # ...when the latest turn is short (a follow-up question)
FOLLOW_UP_MAX_TERMS = 3  # content words
HISTORY_DECAY = 0.6  # each turn further back counts this much less again
HISTORY_MAX_TURNS = 4
FUZZY_WEIGHT = 0.6  # an out-of-vocabulary word matched one edit away
FUZZY_MIN_CHARS = 5  # shorter words are too easily confused to correct

STOPWORDS = frozenset(
    _words("""a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each few for from further had hadn't has hasn't have haven't
    having he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll
    i'm i've if in into is isn't it it's its itself let's me more most my myself no nor not of
    off on once only or other ought our ours ourselves out over own same she she'd she'll she's
    should shouldn't so some such than that that's the their theirs them themselves then there
    there's these they they'd they'll they're they've this those through to too under until up
    very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
    which while who who's whom why why's with won't would wouldn't you you'd you'll you're
    you've your yours yourself yourselves
    hi hello hey please thanks thank okay ok yeah yes yep uh um umm er ah oh hmm well just
    like really think know want wanted need needs get got go going im ive id dont cant
    would could also actually maybe something anything""")
)
# Spoken numbers ("forty two dollars") say how much, not what about.
NUMBER_WORDS = frozenset(
    _words("""zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
    ninety hundred thousand million point""")
)

# Common irregular forms, so "lost" meets "lose" and "sent" meets "send".
_IRREGULAR = {
    "lost": "lose",
    "stolen": "steal",
    "stole": "steal",
    "sent": "send",
    "paid": "pay",
    "took": "take",
    "taken": "take",
    "froze": "freeze",
    "frozen": "freeze",
    "forgot": "forget",
    "forgotten": "forget",
    "bought": "buy",
    "spent": "spend",
    "withdrew": "withdraw",
    "withdrawn": "withdraw",
    "gave": "give",
    "given": "give",
    "came": "come",
    "went": "go",
    "made": "make",
    "told": "tell",
    "said": "say",
    "saw": "see",
    "seen": "see",
    "broke": "break",
    "broken": "break",
    "wrote": "write",
    "written": "write",
    "fell": "fall",
    "found": "find",
    "left": "leave",
    "moved": "move",
    "charged": "charge",
    "kept": "keep",
    "ran": "run",
    "children": "child",
    "men": "man",
    "women": "woman",
    "owed": "owe",
    "began": "begin",
}
_VOWEL = re.compile(r"[aeiouy]")


def stem(word: str) -> str:
    """A deliberately small suffix stripper: plural, past, progressive and adverb forms.

    Consistency matters more than linguistics: ``charge``, ``charges``, ``charged`` and
    ``charging`` must all meet, and ``business`` must not become ``busines``.
    """
    word = _IRREGULAR.get(word, word).replace("'", "")
    if len(word) <= 3:
        return word
    for suffix, repl in (
        ("ies", "y"),
        ("ied", "y"),
        ("ing", ""),
        ("ed", ""),
        ("ly", ""),
        ("es", ""),
        ("s", ""),
    ):
        if not word.endswith(suffix):
            continue
        if suffix == "s" and word.endswith(("ss", "us", "is")):
            break
        if suffix == "ed" and word.endswith("eed"):
            break
        base = word[: -len(suffix)] + repl
        if len(base) >= 3 and _VOWEL.search(base):
            word = base
            break
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouy":
        word = word[:-1]  # stopp(ed) -> stop
    return word


def analyze_pairs(text: str) -> list[tuple[str, str]]:
    """``(stem, surface word)`` for each content word of ``text``, in order."""
    return [
        (stem(w), w)
        for w in normalize(text).split()
        if w not in STOPWORDS and w not in NUMBER_WORDS and len(w) > 1
    ]


def analyze(text: str) -> list[str]:
    """Content-word stems of ``text`` (normalised, stopwords removed), in order."""
    return [s for s, _ in analyze_pairs(text)]


# A caller names a country, the KB says "international": expand the query, not the KB.
PLACE_NAMES = frozenset(
    _words("""afghanistan albania algeria argentina australia austria bangladesh belgium bolivia brazil
    britain bulgaria cambodia cameroon canada chile china colombia croatia cuba czechia denmark
    ecuador egypt england ethiopia europe finland france germany ghana greece guatemala haiti
    honduras hungary iceland india indonesia iran iraq ireland israel italy jamaica japan jordan
    kenya korea lebanon malaysia mexico morocco nepal netherlands nicaragua nigeria norway
    pakistan panama peru philippines poland portugal romania russia scotland senegal serbia
    singapore somalia spain sweden switzerland syria taiwan tanzania thailand turkey uganda uk
    ukraine venezuela vietnam wales yemen zimbabwe africa asia overseas abroad""")
)
PLACE_EXPANSION = ("international", "abroad")


def _deletions(term: str) -> set[str]:
    return {term[:i] + term[i + 1 :] for i in range(len(term))}


@dataclass
class _Doc:
    chunk: Chunk
    body: Counter[str]  # body + weighted heading occurrences
    body_len: int
    title: frozenset[str]
    tags: frozenset[str]


class LexicalIndex:
    """BM25 index of chunks with title/tag bonuses; implements :class:`core.kb.KBSearch`.

    Args:
        articles: articles to index straight away.
        k1: BM25 term-frequency saturation.
        b: BM25 body length normalisation.
    """

    def __init__(self, articles: Iterable[Article] = (), *, k1: float = BM25_K1, b: float = BM25_B):
        self.k1 = k1
        self.b = b
        self._docs: dict[str, _Doc] = {}
        self._by_article: dict[str, list[str]] = {}
        self._postings: dict[str, set[str]] = defaultdict(set)
        self._body_total = 0
        self._fuzzy: dict[str, set[str]] = defaultdict(set)  # one-deletion variant -> indexed terms
        self._lock = threading.RLock()
        for article in articles:
            self.upsert(article)

    @classmethod
    def from_pack(cls, pack: Pack) -> LexicalIndex:
        """An index over every article of ``pack``."""
        return cls(pack.articles)

    # --- maintenance --------------------------------------------------------------
    def upsert(self, article: Article) -> None:
        """Add ``article``, or replace all chunks of the article with the same id."""
        tags = frozenset(analyze(" ".join([*article.tags, *(i.replace("_", " ") for i in article.intents)])))
        title = frozenset(analyze(article.title))
        with self._lock:
            self._remove_locked(article.id)
            ids = []
            for chunk in chunk_article(article):
                body = Counter(analyze(chunk.text))
                length = sum(body.values())
                for term, n in Counter(analyze(chunk.heading)).items():
                    body[term] += HEADING_WEIGHT * n  # type: ignore[assignment]
                doc = _Doc(chunk, body, length, title, tags)
                self._docs[chunk.chunk_id] = doc
                self._body_total += length
                for term in set(body) | title | tags:
                    if term not in self._postings and len(term) >= FUZZY_MIN_CHARS - 1:
                        for variant in _deletions(term) | {term}:
                            self._fuzzy[variant].add(term)
                    self._postings[term].add(chunk.chunk_id)
                ids.append(chunk.chunk_id)
            self._by_article[article.id] = ids

    def remove(self, article_id: str) -> None:
        """Drop every chunk of ``article_id``; unknown ids are ignored."""
        with self._lock:
            self._remove_locked(article_id)

    def _remove_locked(self, article_id: str) -> None:
        for chunk_id in self._by_article.pop(article_id, ()):
            doc = self._docs.pop(chunk_id)
            self._body_total -= doc.body_len
            for term in set(doc.body) | doc.title | doc.tags:
                posting = self._postings[term]
                posting.discard(chunk_id)
                if not posting:
                    del self._postings[term]
                    for variant in _deletions(term) | {term}:
                        self._fuzzy.get(variant, set()).discard(term)

    def __len__(self) -> int:
        """Number of indexed chunks."""
        return len(self._docs)

    def article_ids(self) -> list[str]:
        """Ids of the indexed articles, in insertion order."""
        return list(self._by_article)

    def chunks(self, article_id: str) -> list[Chunk]:
        """The indexed chunks of one article, in reading order (``[]`` if unknown)."""
        with self._lock:
            return [self._docs[c].chunk for c in self._by_article.get(article_id, ())]

    # --- search -------------------------------------------------------------------
    def query_weights(self, query: str, history: Sequence[str] = ()) -> dict[str, float]:
        """Weight per query stem: 1 for the latest turn, less and less for earlier turns."""
        weights: dict[str, float] = {}
        turns = [(query, 1.0)]
        # "how long will that take": a short turn leans on what came before it.
        lead = FOLLOW_UP_WEIGHT if len(set(analyze(query))) <= FOLLOW_UP_MAX_TERMS else HISTORY_WEIGHT
        for back, text in enumerate(reversed(history[-HISTORY_MAX_TURNS:])):
            turns.append((text, lead * HISTORY_DECAY**back))
        for text, weight in turns:
            for term, word in analyze_pairs(text):
                weights[term] = max(weights.get(term, 0.0), weight)
                if word in PLACE_NAMES:
                    for extra in PLACE_EXPANSION:
                        weights[extra] = max(weights.get(extra, 0.0), weight * PLACE_WEIGHT)
        return weights

    def _resolve(self, term: str) -> tuple[str, float] | None:
        """The indexed term for a query stem, and a weight factor (fuzzy match or exact)."""
        if term in self._postings:
            return term, 1.0
        if len(term) < FUZZY_MIN_CHARS:
            return None
        candidates: set[str] = set()
        for variant in _deletions(term) | {term}:
            candidates |= self._fuzzy.get(variant, set())
        if not candidates:
            return None
        # The most specific (rarest) candidate; ties are broken the same way every time.
        best = min(candidates, key=lambda t: (len(self._postings[t]), t))
        return best, FUZZY_WEIGHT

    def search(self, query: str, k: int = 3, history: Sequence[str] = ()) -> list[SearchHit]:
        """Best chunk of each of the ``k`` best-matching articles, best first.

        Args:
            query: the caller's latest words.
            k: how many articles to return at most.
            history: earlier caller turns, oldest first (down-weighted).

        Returns:
            Hits with a positive score only; ``[]`` when nothing matches.
        """
        with self._lock:
            n_docs = len(self._docs)
            if not n_docs or k <= 0:
                return []
            avg_len = self._body_total / n_docs or 1.0
            scores: dict[str, float] = defaultdict(float)
            matched: dict[str, list[str]] = defaultdict(list)
            for term, weight in self.query_weights(query, history).items():
                resolved = self._resolve(term)
                if resolved is None:
                    continue
                indexed, factor = resolved
                posting = self._postings[indexed]
                idf = math.log(1.0 + (n_docs - len(posting) + 0.5) / (len(posting) + 0.5))
                for chunk_id in posting:
                    doc = self._docs[chunk_id]
                    tf = doc.body.get(indexed, 0) / (1.0 - self.b + self.b * doc.body_len / avg_len)
                    gain = tf * (self.k1 + 1) / (tf + self.k1)
                    gain += TITLE_BONUS * (indexed in doc.title) + TAG_BONUS * (indexed in doc.tags)
                    scores[chunk_id] += weight * factor * idf * gain
                    matched[chunk_id].append(indexed)
            best: dict[str, str] = {}
            for chunk_id, score in scores.items():
                article_id = self._docs[chunk_id].chunk.article_id
                if article_id not in best or score > scores[best[article_id]]:
                    best[article_id] = chunk_id
            ranked = sorted(best.values(), key=lambda c: (-scores[c], c))[:k]
            return [
                SearchHit(
                    chunk=self._docs[c].chunk,
                    score=scores[c],
                    matched_terms=tuple(matched[c]),
                    why=f"BM25 {scores[c]:.2f} on {', '.join(matched[c])}",
                )
                for c in ranked
            ]
