"""Domain language model for pocketsphinx: pack text mixed with a general-English background.

What the model is made of, and why (figures in ``docs/speech.md``):

* **Domain part**: an interpolated Kneser-Ney trigram estimated from the KB articles and
  the caller-style lines (the pack's phrase list and intent examples). Caller lines are
  counted ``CALLER_WEIGHT`` times: callers talk like the phrase list, not like the KB
  prose, and on held-out caller sentences this weighting lowers WER.
* **Background part**: the 6,000 most frequent words of the general en-US model shipped
  with pocketsphinx, with its bigrams and trigrams among them, restricted to those words.
  A few hundred KB sentences cannot cover what callers say ("coffee shop", "my
  daughter"); without a background, one word in ten of held-out caller speech is out of
  vocabulary and is always an error.
* The two are mixed linearly (``DOMAIN_WEIGHT`` on the domain part) and written as one
  ARPA backoff model with renormalised backoff weights (a static mixture).

Words without a CMUdict pronunciation are given one when they are a compound of two
dictionary words (``northwind`` = ``north`` + ``wind``); other unknown words split the
sentence, so the in-vocabulary context around them still counts.

The model and a trimmed dictionary are cached on disk under a name derived from the
text and the parameters, so a KB edit produces a new model and an unchanged KB reuses
the old one. The background (independent of the KB) is cached separately: computing it
queries the general model ~7 million times (a few seconds, once per cache folder).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from core.language.text import normalize, split_sentences

log = logging.getLogger(__name__)

ORDER = 3
CALLER_WEIGHT = 3  # caller-style lines count this many times the KB prose
DOMAIN_WEIGHT = 0.6  # mixture weight of the domain part (the background gets the rest)
BACKGROUND_WORDS = 6000  # most frequent general-English words kept
BACKGROUND_BIGRAM_CONTEXTS = 1000  # general bigrams are read for the most frequent contexts
BACKGROUND_TRIGRAM_CONTEXTS = 3000  # ... and trigrams for the most probable word pairs
BACKGROUND_MIN_BIGRAM_P = 1e-3  # general n-grams less likely than this are left to backoff
BACKGROUND_MIN_TRIGRAM_P = 3e-3
_MIN_COMPOUND_PART = 2
_FORMAT_VERSION = 3  # bump when the estimation changes, so caches are rebuilt

NGram = tuple[str, ...]


@dataclass(frozen=True)
class DomainModel:
    lm_path: Path
    dict_path: Path
    vocabulary_size: int
    sentences: int


def _model_dir() -> Path:
    import pocketsphinx

    return Path(pocketsphinx.get_model_path()) / "en-us"


def load_dictionary(path: Path | None = None) -> dict[str, list[str]]:
    """CMUdict as word → list of pronunciation lines (variants like ``word(2)`` kept)."""
    path = path or _model_dir() / "cmudict-en-us.dict"
    entries: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word = line.split(" ", 1)[0]
            base = word.split("(", 1)[0]
            entries.setdefault(base, []).append(line.rstrip("\n"))
    return entries


_DICT_CACHE: dict[str, list[str]] | None = None


def _dictionary() -> dict[str, list[str]]:
    global _DICT_CACHE
    if _DICT_CACHE is None:
        _DICT_CACHE = load_dictionary()
    return _DICT_CACHE


def _phones(entry: str) -> str:
    return entry.split(" ", 1)[1].strip()


def pronunciations(word: str) -> list[str]:
    """Dictionary lines for ``word``: CMUdict's, else a compound of two CMUdict words.

    The compound split keeps both parts as long as possible (``northwind`` → ``north`` +
    ``wind``, not ``nor`` + ``thwind``). Returns ``[]`` when the word cannot be spoken.
    """
    vocab = _dictionary()
    if word in vocab:
        return vocab[word]
    best: tuple[int, str, str] | None = None
    for i in range(_MIN_COMPOUND_PART, len(word) - _MIN_COMPOUND_PART + 1):
        head, tail = word[:i], word[i:]
        if head in vocab and tail in vocab and "'" not in head:
            score = min(len(head), len(tail))
            if best is None or score > best[0]:
                best = (score, head, tail)
    if best is None or len(word) < 5:
        return []
    _, head, tail = best
    lines = []
    for a in vocab[head]:
        for b in vocab[tail]:
            name = word if not lines else f"{word}({len(lines) + 1})"
            lines.append(f"{name} {_phones(a)} {_phones(b)}")
    return lines


def _speakable(word: str, memo: dict[str, bool] = {}) -> bool:  # noqa: B006 - process cache
    if word not in memo:
        memo[word] = bool(pronunciations(word))
    return memo[word]


def corpus_sentences(texts: list[str], phrases: list[str]) -> list[str]:
    """Normalised, pronounceable word sequences for LM estimation.

    Sentences are split at words that have no pronunciation (they cannot be recognised)
    rather than dropped, so the in-vocabulary context around them still counts.
    """
    out: list[str] = []
    for sentence in [*(s for t in texts for s in split_sentences(t)), *phrases]:
        run: list[str] = []
        for word in normalize(sentence).split():
            if _speakable(word):
                run.append(word)
            else:
                if run:
                    out.append(" ".join(run))
                run = []
        if run:
            out.append(" ".join(run))
    return out


# --- domain part: interpolated Kneser-Ney ---------------------------------------------
class KneserNey:
    """Interpolated Kneser-Ney n-gram estimate (one discount per order, from count-of-counts)."""

    def __init__(self, sentences: Iterable[str], order: int = ORDER):
        self.order = order
        raw: list[Counter[NGram]] = [Counter() for _ in range(order + 1)]
        for s in sentences:
            ws = ["<s>", *s.split(), "</s>"]
            for n in range(1, order + 1):
                for i in range(len(ws) - n + 1):
                    raw[n][tuple(ws[i : i + n])] += 1
        raw[1].pop(("<s>",), None)
        # Lower orders use continuation counts: in how many contexts a word follows.
        cont: list[Counter[NGram]] = [Counter() for _ in range(order + 1)]
        for n in range(2, order + 1):
            for gram in raw[n]:
                cont[n - 1][gram[1:]] += 1
        self.counts: list[dict[NGram, int]] = [{}]
        for n in range(1, order + 1):
            if n == order:
                self.counts.append(dict(raw[n]))
            else:
                keys = (set(raw[n]) | set(cont[n])) - {("<s>",)}
                self.counts.append({g: cont[n][g] or raw[n][g] for g in keys})
        self.discount = [0.0]
        for n in range(1, order + 1):
            coc = Counter(self.counts[n].values())
            n1, n2 = coc.get(1, 0), coc.get(2, 0)
            d = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
            self.discount.append(min(0.9, max(0.1, d)))
        self.context_total: list[dict[NGram, float]] = [{} for _ in range(order + 1)]
        self.context_types: list[dict[NGram, int]] = [{} for _ in range(order + 1)]
        for n in range(2, order + 1):
            tot: defaultdict[NGram, float] = defaultdict(float)
            types: defaultdict[NGram, int] = defaultdict(int)
            for gram, c in self.counts[n].items():
                tot[gram[:-1]] += c
                types[gram[:-1]] += 1
            self.context_total[n], self.context_types[n] = dict(tot), dict(types)
        total1 = sum(self.counts[1].values())
        self.unigram = {g[0]: c / total1 for g, c in self.counts[1].items()}
        self._memo: dict[NGram, float] = {}

    @property
    def vocabulary(self) -> set[str]:
        return set(self.unigram)

    def listed(self, n: int) -> list[NGram]:
        return [g for g in self.counts[n] if g[-1] != "<s>"]

    def prob(self, gram: NGram) -> float:
        if gram in self._memo:
            return self._memo[gram]
        n = len(gram)
        if n == 1:
            p = self.unigram.get(gram[0], 0.0)
        else:
            ctx = gram[:-1]
            total = self.context_total[n].get(ctx)
            if not total:
                p = self.prob(gram[1:])
            else:
                d = self.discount[n]
                p = max(self.counts[n].get(gram, 0) - d, 0.0) / total + (
                    d * self.context_types[n][ctx] / total * self.prob(gram[1:])
                )
        self._memo[gram] = p
        return p


# --- background part: the general model, restricted ----------------------------------
@dataclass
class Background:
    """General-English n-gram probabilities over its most frequent words."""

    ngrams: dict[NGram, float]  # probability of the last word given the others
    unigram_lookup: Callable[[str], float | None]

    @property
    def words(self) -> set[str]:
        return {g[0] for g in self.ngrams if len(g) == 1}


def _general_lm() -> tuple[object, Callable[[int], float]]:
    import pocketsphinx

    model = pocketsphinx.NGramModel.readfile(str(_model_dir() / "en-us.lm.bin"))
    to_log10 = math.log10(1.0001)  # pocketsphinx's default log base

    def prob(score: int) -> float:
        return 10.0 ** (score * to_log10)

    return model, prob


def _background_key() -> str:
    lm = _model_dir() / "en-us.lm.bin"
    spec = (
        f"{_FORMAT_VERSION}|{lm.stat().st_size}|{BACKGROUND_WORDS}|{BACKGROUND_BIGRAM_CONTEXTS}|"
        f"{BACKGROUND_TRIGRAM_CONTEXTS}|{BACKGROUND_MIN_BIGRAM_P}|{BACKGROUND_MIN_TRIGRAM_P}"
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def _compute_background() -> dict[NGram, float]:
    """Query the general model for its n-grams among its most frequent words.

    ``NGramModel.prob([w, h1, h2])`` is P(w | h2 h1) (history most recent first) in
    log base 1.0001.
    """
    model, to_p = _general_lm()
    unknown = model.prob(["<no-such-word>"])  # type: ignore[attr-defined]
    scores: dict[str, int] = {}
    for word in _dictionary():
        s = model.prob([word])  # type: ignore[attr-defined]
        if s != unknown:
            scores[word] = s
    top = sorted(scores, key=lambda w: (-scores[w], w))[:BACKGROUND_WORDS]
    mass = sum(to_p(scores[w]) for w in scores)
    if not 0.5 < mass < 1.05:  # the log base assumption is wrong: do not use garbage
        raise RuntimeError(f"general LM unigram mass {mass:.3f}; unexpected log base")
    targets = [*top, "</s>"]
    ngrams: dict[NGram, float] = {(w,): to_p(scores[w]) for w in top}
    ngrams[("</s>",)] = to_p(model.prob(["</s>"]))  # type: ignore[attr-defined]
    min2 = math.log10(BACKGROUND_MIN_BIGRAM_P) / math.log10(1.0001)
    min3 = math.log10(BACKGROUND_MIN_TRIGRAM_P) / math.log10(1.0001)
    prob = model.prob  # type: ignore[attr-defined]
    for v in ["<s>", *top[:BACKGROUND_BIGRAM_CONTEXTS]]:
        for w in targets:
            s = prob([w, v])
            if s >= min2:
                ngrams[(v, w)] = to_p(s)
    pairs = sorted(
        (g for g in ngrams if len(g) == 2 and g[1] != "</s>"),
        key=lambda g: (-(ngrams.get((g[0],), 0.05) * ngrams[g]), g),
    )[:BACKGROUND_TRIGRAM_CONTEXTS]
    # A likely trigram continuation is a likely bigram continuation of its last word,
    # or a very frequent word: only those are queried (25x fewer queries, same model).
    successors: defaultdict[str, list[str]] = defaultdict(list)
    for g in ngrams:
        if len(g) == 2:
            successors[g[0]].append(g[1])
    frequent = targets[:300] + ["</s>"]
    for u, v in pairs:
        for w in set(successors.get(v, ())) | set(frequent):
            s = prob([w, v, u])
            if s >= min3:
                ngrams[(u, v, w)] = to_p(s)
    return ngrams


def load_background(cache_dir: Path) -> Background:
    """The background n-grams, computed once and cached in ``cache_dir``."""
    path = cache_dir / f"background-{_background_key()}.tsv"
    if not path.exists():
        log.info("computing the general-English background for the domain LM (once)")
        ngrams = _compute_background()
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(
            path, lambda fh: fh.writelines(f"{p!r}\t{' '.join(g)}\n" for g, p in ngrams.items())
        )
    else:
        ngrams = {}
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                p, gram = line.rstrip("\n").split("\t")
                ngrams[tuple(gram.split(" "))] = float(p)
    model_box: list[tuple[object, Callable[[int], float]]] = []

    def unigram(word: str) -> float | None:
        if not model_box:
            model_box.append(_general_lm())
        model, to_p = model_box[0]
        s = model.prob([word])  # type: ignore[attr-defined]
        return None if s == model.prob(["<no-such-word>"]) else to_p(s)  # type: ignore[attr-defined]

    return Background(ngrams, unigram)


# --- the mixture ------------------------------------------------------------------------
class _BackoffModel:
    """An ARPA-style backoff model held in dicts: listed probabilities plus backoff weights."""

    def __init__(self, probs: dict[int, dict[NGram, float]]):
        self.probs = probs
        self.bow: dict[NGram, float] = {}

    def prob(self, gram: NGram) -> float:
        n = len(gram)
        if n == 1:
            return self.probs[1].get(gram, 0.0)
        listed = self.probs[n].get(gram)
        if listed is not None:
            return listed
        return self.bow.get(gram[:-1], 1.0) * self.prob(gram[1:])

    def renormalise(self, order: int, cap: bool = False) -> None:
        """Compute backoff weights so every context's distribution sums to one."""
        for n in range(2, order + 1):
            by_ctx: defaultdict[NGram, list[NGram]] = defaultdict(list)
            for g in self.probs[n]:
                by_ctx[g[:-1]].append(g)
            for ctx, grams in by_ctx.items():
                listed = sum(self.probs[n][g] for g in grams)
                if cap and listed > 0.999:
                    for g in grams:
                        self.probs[n][g] *= 0.999 / listed
                    listed = 0.999
                lower = sum(self.prob(g[1:]) for g in grams)
                self.bow[ctx] = max(1.0 - listed, 1e-9) / max(1.0 - lower, 1e-9)


def mix_models(
    domain: KneserNey, background: Background | None, domain_weight: float, vocabulary: set[str]
) -> _BackoffModel:
    """Linear mixture of the domain model and the background over ``vocabulary``."""
    order = domain.order
    vocab = set(vocabulary) | {"</s>"}
    known = lambda g: all(w in vocab or w == "<s>" for w in g) and g[-1] != "<s>"  # noqa: E731

    general: _BackoffModel | None = None
    mu = domain_weight if background is not None else 1.0
    if background is not None:
        uni: dict[str, float] = {}
        floor = min(p for g, p in background.ngrams.items() if len(g) == 1)
        for w in vocab:
            p = background.ngrams.get((w,))
            if p is None:
                p = background.unigram_lookup(w) or floor
            uni[w] = p
        z = sum(uni.values())
        probs: dict[int, dict[NGram, float]] = {1: {(w,): p / z for w, p in uni.items()}}
        for n in range(2, order + 1):
            probs[n] = {g: p for g, p in background.ngrams.items() if len(g) == n and known(g)}
        # A listed n-gram needs its context listed one order down.
        for n in range(3, order + 1):
            probs[n] = {g: p for g, p in probs[n].items() if g[:-1] in probs[n - 1]}
        general = _BackoffModel(probs)
        general.renormalise(order, cap=True)

    def p_general(g: NGram) -> float:
        return general.prob(g) if general is not None else 0.0

    mixed: dict[int, dict[NGram, float]] = {
        1: {(w,): mu * domain.prob((w,)) + (1 - mu) * p_general((w,)) for w in vocab}
    }
    for n in range(2, order + 1):
        keys = {g for g in domain.listed(n) if known(g)}
        if general is not None:
            keys |= set(general.probs[n])
        keys = {g for g in keys if n == 2 or g[:-1] in mixed[n - 1]}
        mixed[n] = {g: mu * domain.prob(g) + (1 - mu) * p_general(g) for g in keys}
    model = _BackoffModel(mixed)
    model.renormalise(order)
    return model


def write_arpa(model: _BackoffModel, fh: TextIO, order: int = ORDER) -> None:
    """Write a backoff model in ARPA format (``<s>`` gets the conventional -99)."""
    unigrams = dict(model.probs[1])
    unigrams[("<s>",)] = 0.0
    tables = {1: unigrams, **{n: model.probs[n] for n in range(2, order + 1)}}
    fh.write("\\data\\\n")
    for n in range(1, order + 1):
        fh.write(f"ngram {n}={len(tables[n])}\n")
    for n in range(1, order + 1):
        fh.write(f"\n\\{n}-grams:\n")
        for gram in sorted(tables[n]):
            p = tables[n][gram]
            line = f"{math.log10(p) if p > 0 else -99.0:.5f} {' '.join(gram)}"
            if n < order:
                bow = model.bow.get(gram)
                line += f" {math.log10(bow):.5f}" if bow else " 0.00000"
            fh.write(line + "\n")
    fh.write("\n\\end\\\n")


def _atomic_write(target: Path, writer: Callable[[TextIO], object]) -> None:
    """Write to a temp file then rename, so a concurrent reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            writer(fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_domain_model(
    texts: list[str],
    phrases: list[str],
    cache_dir: Path,
    *,
    background: bool = True,
    background_cache_dir: Path | None = None,
) -> DomainModel:
    """Build (or reuse from cache) the ARPA LM and trimmed dictionary for this text.

    Args:
        texts: KB prose (split into sentences here).
        phrases: caller-style lines (phrase list, intent examples), weighted up.
        cache_dir: where the model files go.
        background: mix in the general-English background (see module docstring).
        background_cache_dir: where the background is cached (default ``cache_dir``).

    Raises:
        ValueError: there is no pronounceable text at all.
    """
    kb = corpus_sentences(texts, [])
    caller = corpus_sentences([], phrases)
    if not kb and not caller:
        raise ValueError("no in-vocabulary text to build a language model from")
    sentences = kb + caller * CALLER_WEIGHT
    spec = (
        f"v{_FORMAT_VERSION}|order={ORDER}|caller={CALLER_WEIGHT}|mu={DOMAIN_WEIGHT}|"
        f"bg={_background_key() if background else 'none'}\n"
    )
    corpus = spec + "\n".join(sentences) + "\n"
    key = hashlib.sha256(corpus.encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    lm_path = cache_dir / f"domain-{key}.lm"
    dict_path = cache_dir / f"domain-{key}.dict"
    domain_vocab = {w for s in sentences for w in s.split()}
    if not (lm_path.exists() and dict_path.exists()):
        log.info("building domain language model", extra={"sentences": len(sentences)})
        domain = KneserNey(sentences)
        bg = load_background(background_cache_dir or cache_dir) if background else None
        vocab = domain_vocab | ({w for w in bg.words if _speakable(w)} if bg else set())
        vocab.discard("</s>")
        model = mix_models(domain, bg, DOMAIN_WEIGHT, vocab)
        lines = [e for w in sorted(vocab) for e in pronunciations(w)]
        _atomic_write(lm_path, lambda fh: write_arpa(model, fh))
        _atomic_write(dict_path, lambda fh: fh.write("\n".join(lines) + "\n"))
    with open(dict_path, encoding="utf-8") as fh:
        vocabulary_size = len({line.split(" ", 1)[0].split("(", 1)[0] for line in fh if line.strip()})
    return DomainModel(lm_path, dict_path, vocabulary_size, len(sentences))
