"""Text normalisation shared by the language model builder, the junk filter and WER."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()

# Sounds that carry no content on their own; a final made only of these is dropped.
FILLER_WORDS = frozenset(
    "uh um umm uhm er erm ah ahh hmm hm mm mhm mmm huh eh oh".split()
)
_NOISE_TOKEN = re.compile(r"^(\[.*\]|<.*>|\+\+.*\+\+|\(.*\))$")


def number_to_words(n: int) -> str:
    """Spoken English for a non-negative integer below one trillion."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            high, rest = divmod(n, size)
            return (
                number_to_words(high) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
            )
    raise ValueError(n)  # pragma: no cover


def _spell_number(match: re.Match[str]) -> str:
    token = match.group(0).replace(",", "")
    if "." in token:
        whole, frac = token.split(".", 1)
        spoken = number_to_words(int(whole)) if whole else "zero"
        return spoken + " point " + " ".join(_ONES[int(d)] for d in frac if d.isdigit())
    if len(token) > 4 and token.startswith("0") or len(token) > 9:
        return " ".join(_ONES[int(d)] for d in token)  # account-like digit strings
    return number_to_words(int(token))


_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def normalize(text: str) -> str:
    """Lowercase words as a recogniser would output them: no punctuation, numbers spelled.

    ``"$1,250.50 fee"`` → ``"one thousand two hundred fifty point five zero dollars fee"``
    is not attempted; currency symbols become the word that is spoken.
    """
    text = text.lower()
    text = re.sub(r"\$\s*(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = text.replace("%", " percent").replace("&", " and ")
    text = _NUMBER.sub(_spell_number, text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)
    return " ".join(text.split())


_NUMBER_WORDS = {w: i for i, w in enumerate(_ONES)} | {w: 10 * i for i, w in enumerate(_TENS) if w != "_"}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}


def _spoken_numbers(tokens: list[str]) -> list[str]:
    """Runs of number words as digit strings: "five hundred" → "500", "twenty one" → "21";
    "four four seven two" → "4", "4", "7", "2" (a single digit after a unit starts a new number)."""
    out: list[str] = []
    total = current = 0
    in_number = last_unit = False

    def close() -> None:
        nonlocal total, current, in_number, last_unit
        if in_number:
            out.append(str(total + current))
        total = current = 0
        in_number = last_unit = False

    for i, tok in enumerate(tokens):
        value = _NUMBER_WORDS.get(tok)
        if value is not None:
            if in_number and (last_unit or (value >= 20 and current % 100 != 0) or (value >= 10 and current % 100 >= 10)):
                close()  # "four four", "twenty twenty", "eleven five": separate numbers
            current += value
            in_number = True
            last_unit = value < 10 or 10 <= value < 20
        elif tok in _SCALES and in_number:
            scale = _SCALES[tok]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
            last_unit = False
        elif tok == "and" and in_number and i + 1 < len(tokens) and tokens[i + 1] in _NUMBER_WORDS and current % 100 == 0:
            continue  # "one hundred and five"
        else:
            close()
            out.append(tok)
    close()
    return out


# Spellings and titles that mean the same word (as in common WER normalisers): a recogniser
# writing "metres" or "Mr." for the reference's "meters" or "mister" made no error.
_SAME_WORD = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint",
    "ok": "okay", "metre": "meter", "metres": "meters", "centre": "center", "centres": "centers",
    "theatre": "theater", "colour": "color", "colours": "colors", "favour": "favor",
    "favourite": "favorite", "honour": "honor", "labour": "labor", "neighbour": "neighbor",
    "behaviour": "behavior", "organise": "organize", "organised": "organized",
    "organisation": "organization", "realise": "realize", "realised": "realized",
    "recognise": "recognize", "recognised": "recognized", "apologise": "apologize",
    "authorise": "authorize", "authorised": "authorized", "authorisation": "authorization",
    "programme": "program", "catalogue": "catalog", "licence": "license", "defence": "defense",
    "travelled": "traveled", "travelling": "traveling", "enrol": "enroll", "grey": "gray",
}


def words(text: str) -> list[str]:
    """Words as WER counts them: lower case, no punctuation, every number as its digits,
    however it was written ("500", "five hundred" and "$500" vs "five hundred dollars"
    compare equal; "4472" = "four four seven two" = "4,472"), and British spellings and
    titles as their American or spoken form ("metres" = "meters", "Mr." = "mister").
    A wrong number costs one error per wrong digit."""
    text = text.lower()
    text = re.sub(r"\$\s*(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = text.replace("%", " percent").replace("&", " and ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"(?<=\d)\.(?=\d)", " point ", text)
    text = re.sub(r"(\d)", r" \1 ", text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)
    tokens = _spoken_numbers([_SAME_WORD.get(t, t) for t in text.split()])
    return [ch for tok in tokens for ch in (list(tok) if tok.isdigit() else [tok])]


def is_junk(text: str) -> bool:
    """True for transcripts with no content: empty, lone fillers, noise tokens."""
    tokens = [t for t in text.lower().split() if not _NOISE_TOKEN.match(t)]
    return not [t for t in tokens if t.strip(".,?!") not in FILLER_WORDS]


def clean_hypothesis(text: str) -> str:
    """Remove noise tokens (``[NOISE]``, ``<sil>``, ``++breath++``) from recogniser output."""
    return " ".join(t for t in text.split() if not _NOISE_TOKEN.match(t))


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance over tokens."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(references: Iterable[str], hypotheses: Iterable[str]) -> float:
    """Corpus word error rate: total edits / total reference words, after normalisation."""
    edits = 0
    total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = words(ref), words(hyp)
        edits += edit_distance(r, h)
        total += len(r)
    return edits / total if total else 0.0


def split_sentences(text: str) -> list[str]:
    """Split prose (Markdown allowed) into sentences and list items."""
    text = re.sub(r"`{1,3}[^`]*`{1,3}", " ", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    parts: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(#+|[-*+]|\d+[.)])\s*", "", line).strip()
        if not line:
            continue
        parts.extend(s.strip() for s in re.split(r"(?<=[.!?;:])\s+", line) if s.strip())
    return parts


# Markdown images: inline ![alt](url "title") and reference ![alt][ref] / ![alt] with a
# "[ref]: url" line. Rendering one makes every reader's browser fetch the URL (a tracking
# beacon in a KB article sees who read it, and when).
_INLINE_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\(\s*<?(?P<url>[^)\s>]*)>?(?:\s+[^)]*)?\)")
_REFERENCE_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\](?!\()(?:\[(?P<ref>[^\]]*)\])?")
_REFERENCE_DEFINITION = re.compile(r"^[ ]{0,3}\[(?P<ref>[^\]]+)\]:\s*<?(?P<url>\S+?)>?(?:\s.*)?$", re.MULTILINE)


def without_remote_images(text: str, allowed_hosts: Sequence[str] = ()) -> str:
    """``text`` (Markdown) with every image turned into ``[image: alt]``, except images
    over https from one of ``allowed_hosts``; links and everything else are left alone."""
    from urllib.parse import urlsplit

    allowed = {h.strip().lower() for h in allowed_hosts if h.strip()}
    refs = {m.group("ref").strip().lower(): m.group("url") for m in _REFERENCE_DEFINITION.finditer(text)}

    def ok(url: str) -> bool:
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        return parts.scheme == "https" and (parts.hostname or "").lower() in allowed

    def described(alt: str) -> str:
        return f"[image: {alt.strip()}]" if alt.strip() else "[image]"

    def inline(m: re.Match[str]) -> str:
        return m.group(0) if ok(m.group("url")) else described(m.group("alt"))

    def reference(m: re.Match[str]) -> str:
        ref = (m.group("ref") or m.group("alt")).strip().lower()
        return m.group(0) if ok(refs.get(ref, "")) else described(m.group("alt"))

    return _REFERENCE_IMAGE.sub(reference, _INLINE_IMAGE.sub(inline, text))
