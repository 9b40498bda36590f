"""Cut KB articles into passages to retrieve and into sentences a voice agent can say.

Passages: one per ``##`` section, the unit an agent reads ("Fees", "Timing", "When to
escalate"). Sections above :data:`MAX_CHUNK_WORDS` are split at sentence boundaries into
parts of roughly equal size, so no passage dominates BM25 length normalisation or
overflows an embedding model's window.

Sentences: KB articles are written for agents ("Verify identity, then block the card"),
so each sentence gets a small, mechanical rewrite before a voice agent may say it:

* money and markdown: ``$25`` → ``25 dollars``, ``**bold**`` → ``bold``;
* person: "the customer has" → "you have", "their" → "your", an agent's "you" → "I";
* instructions become offers or statements: "Open a dispute" → "I can open a dispute",
  "Explain that X" → "X", "Ask whether the customer has X" → "Have you X?";
* sentences about the agent's own tools or process ("check the card screen",
  "verify identity", "follow the freeze article") are never spoken (:func:`spoken_form`
  returns ``None``).

Nothing is added: the words are the article's, re-voiced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.kb import Chunk
from core.kb.pack import Article
from core.language.text import split_sentences


def _words(text: str) -> list[str]:
    return text.split()


MAX_CHUNK_WORDS = 120  # a passage above this is split (MiniLM reads ~256 word pieces)

_HEADING = re.compile(r"^\s{0,3}#{2,6}\s+(.+?)\s*#*\s*$")
_TITLE_LINE = re.compile(r"^\s{0,3}#\s+")


def _sections(body: str) -> list[tuple[str, str]]:
    """``(heading, text)`` pairs in order; text before the first heading has heading ``""``."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in body.splitlines():
        match = _HEADING.match(line)
        if match:
            sections.append((match.group(1).strip(), []))
        elif not _TITLE_LINE.match(line):  # a "# Title" line repeats the front matter
            sections[-1][1].append(line)
    return [(h, "\n".join(lines).strip()) for h, lines in sections if "\n".join(lines).strip()]


def _split_long(text: str, max_words: int) -> list[str]:
    """Split ``text`` at sentence boundaries into parts of at most ``max_words`` words.

    Parts are balanced (a 130-word section becomes 65 + 65, not 120 + 10). A single
    sentence longer than ``max_words`` is kept whole rather than cut mid-sentence.
    """
    total = len(text.split())
    if total <= max_words:
        return [text]
    sentences = split_sentences(text)
    n_parts = -(-total // max_words)
    target = total / n_parts
    parts: list[list[str]] = [[]]
    size = 0
    for sentence in sentences:
        n = len(sentence.split())
        if parts[-1] and (size + n > max_words or size >= target):
            parts.append([])
            size = 0
        parts[-1].append(sentence)
        size += n
    return [" ".join(p) for p in parts if p]


def chunk_article(article: Article, max_words: int = MAX_CHUNK_WORDS) -> list[Chunk]:
    """Passages of one article, in reading order.

    Args:
        article: a parsed KB article.
        max_words: sections longer than this are split at sentence boundaries.

    Returns:
        Chunks with ids ``"<article id>#0"``, ``"#1"``, ... (at least one chunk).
    """
    chunks: list[Chunk] = []
    for heading, text in _sections(article.body) or [("", article.title)]:
        for part in _split_long(text, max_words):
            chunks.append(
                Chunk(
                    article_id=article.id,
                    chunk_id=f"{article.id}#{len(chunks)}",
                    title=article.title,
                    text=part,
                    heading=heading,
                )
            )
    return chunks


# --- speakable sentences -----------------------------------------------------------------
ESCALATION_HEADING = re.compile(r"escalat", re.I)  # "When to escalate": rules for agents
_FUNCTION_WORDS = frozenset(_words("no the a an if for when once this that it there they we you"))
_OFFER_VERBS = frozenset(
    _words(
        "block freeze unfreeze order open cancel submit refund release unlock email send reset transfer "
        "check confirm give read help stop update change sign raise book close link waive add remove "
        "replace activate request offer look"
    )
)
_SUGGEST_VERBS = {
    "suggest": "I'd suggest",
    "recommend": "I'd recommend",
    "advise": "I'd advise",
    "encourage": "I'd encourage",
}
_SKIP_VERBS = frozenset(_words("verify note act stay never follow treat always wait direct select choose"))
_FRAME_VERBS = frozenset(_words("tell explain reassure be remind let thank ask"))
_DIRECTIVES = _OFFER_VERBS | _SKIP_VERBS | _FRAME_VERBS | frozenset(_SUGGEST_VERBS)
_SUBORDINATE = re.compile(r"^(?:If|Once|When|For|After|Before|Until|While|Unless)\b")
_SPLIT_POINT = re.compile(r",\s+(?:(?:then|so|simply)\s+)?(\w+)")  # ", [so] <verb>" starts the main clause
# Agent-only tools and process: a sentence naming one is never read to the caller.
_META = re.compile(
    r"\b(?:article|card screen|profile screen|branch finder|agents?|agent's)\b|^Customers often\b", re.I
)
_CUSTOMER_VERB = (
    r"\b(?:the customer|the caller)((?:\s+(?:no longer|still|usually|only|often|also|already|never|then))?)"
    r"\s+([\w']+)"
)
_THING_VERBS = "appear|appears|arrive|post|expire|clear|cost|show"
_GENERATED_START = re.compile(r"^(?:Please|You|Thank|Could|Do|Have|Are|Is|Did|Can|Will|This|Their|They)\b")
_WHO = r"(?:the customer|the caller|customers|them|they)"
_AGREE = dict(
    zip(
        _words("has is was does doesn't isn't wasn't hasn't"),
        _words("have are were do don't aren't weren't haven't"),
        strict=True,
    )
)
_NOT_VERBS = frozenset(_words("its this his as us plus thus always perhaps unless"))
_PRONOUNS = dict(
    zip(
        _words("they them their theirs themselves they're they've they'll they'd"),
        _words("you you your yours yourself you're you've you'll you'd"),
        strict=True,
    )
)


@dataclass(frozen=True)
class SpokenSentence:
    """One KB sentence as the agent would say it to the caller (see :func:`spoken_form`)."""

    key: str  # "<chunk id>.<n>": what memory records as answered
    section: int  # chunk index within the article
    position: int  # sentence index within the article (every sentence counts)
    heading: str
    text: str
    keep_case: bool  # starts with "I", a name or an acronym: never lowercased
    condition: str = ""  # "If you shared nothing": the section heading it only holds under


def _agree(match: re.Match[str]) -> str:
    adverb, verb = match.group(1) or "", match.group(2)
    low = verb.lower()
    if low in _AGREE:
        verb = _AGREE[low]
    elif low.endswith("s") and not low.endswith("ss") and low not in _NOT_VERBS and len(low) > 3:
        if low.endswith("ies"):
            verb = verb[:-3] + "y"
        elif low.endswith(("ches", "shes", "sses", "xes", "zes")):
            verb = verb[:-2]
        else:
            verb = verb[:-1]
    return f"you{adverb} {verb}"


def _person(text: str, pronouns: bool, subject_they: bool = True) -> str:
    """Customer → "you", agent "you" → "I"/"me".

    Pronoun resolution is a heuristic that fits how KB articles are written: "they",
    "them" and "their" near the customer mean the customer, except before verbs only
    things do ("the date they appear on") and in "read them back".

    Args:
        text: part of a KB sentence.
        pronouns: they/them/their refer to the customer in ``text``.
        subject_they: with ``pronouns``, "they" does too (not in "transfer to the team so they can").
    """
    text = re.sub(r"\byou are\b", "\x01I am", text)
    text = re.sub(r"\byou were\b", "\x01I was", text)
    text = re.sub(
        r"\byou(?=\s+(?:can|cannot|can't|have|will|should|may|must|need|see|do|did)\b)", "\x01I", text
    )
    text = re.sub(r"\byou\b", "\x01me", text)
    text = re.sub(r"\b(?:the customer's|the caller's)", "your", text, flags=re.I)
    text = re.sub(
        r"\b(ask|tell|remind|help|email|text|call|contact|give|let) them\b", r"\1 you", text, flags=re.I
    )
    text = re.sub(_CUSTOMER_VERB, _agree, text, flags=re.I)
    text = re.sub(r"\b(?:the customer|the caller)\b", "you", text, flags=re.I)
    text = re.sub(
        r"(^|\b(?:so|let|that|advise|remind)\s+)customers\b(?!\s+(?:who|often))", r"\1you", text, flags=re.I
    )
    if pronouns:
        words = r"(?<!delete )(?<!on )them(?!\s+back)|their|theirs|themselves"
        if subject_they:
            words += rf"|they(?!\s+(?:{_THING_VERBS})\b)|they're|they've|they'll|they'd"
        text = re.sub(rf"\b(?:{words})\b", lambda m: _PRONOUNS[m.group(0).lower()], text, flags=re.I)
    return text.replace("\x01", "")


def _question(clause: str) -> str | None:
    """ "the customer has tried X" → "Have you tried X?" (the "ask whether ..." frame)."""
    clause = re.split(r",\s+(?:because|since)\b", clause)[0]
    m = re.match(r"(.+?)\s+(has|have|is|are|was|were|could|can|will|would|did|does|do|should)\s+(.*)", clause)
    if m and len(m.group(1).split()) <= 4:
        subject = _person(m.group(1), True)
        aux = _AGREE.get(m.group(2), m.group(2)) if subject.lower() == "you" else m.group(2)
        return f"{aux} {subject} {_person(m.group(3), True)}".rstrip(".") + "?"
    m = re.match(rf"{_WHO}\s+(\w+)\s+(.*)", clause, re.I)
    if m:
        return f"Do you {m.group(1)} {_person(m.group(2), True)}".rstrip(".") + "?"
    return None


def _main_clause(main: str, about_customer: bool = False) -> str | None:
    """An instruction to the agent as something said to the caller; ``None`` if not sayable."""
    main = re.sub(r"^(?:Then|First|Simply)\s+", "", main, flags=re.I)
    first, _, rest = main.partition(" ")
    verb = first.lower().strip(",")
    if verb == "tell":
        m = re.match(rf"{_WHO}\s+(that\s+)?(.*)", rest, re.I)
        if m and (m.group(1) or re.match(r"(?:they|we|it|there)\b", m.group(2))):
            return re.sub(r"\b(and|but) that\b", r"\1", _person(m.group(2), True))
        return "I can " + _person(main[0].lower() + main[1:], True, subject_they=False)
    if verb in ("explain", "reassure", "be", "remind", "let"):
        pattern = {
            "reassure": rf"{_WHO}\s+that\s+(.*)",
            "remind": rf"{_WHO}\s+(?:that\s+)?((?:to|we|they|it|there|northwind|the|adding|no)\b.*)",
            "explain": r"that\s+(.*)",
            "be": r"honest\s+that\s+(.*)",
            "let": rf"{_WHO}\s+know\s+(?:that\s+)?(.*)",
        }
        m = re.match(pattern[verb], rest, re.I)
        if not m:
            return None
        said = re.sub(r"\b(and|but) that\b", r"\1", _person(m.group(1), True))
        return "Please remember " + said if verb == "remind" and said.startswith("to ") else said
    if verb == "thank":
        return re.sub(rf"^{_WHO}\b", "Thank you", rest, flags=re.I) if re.match(_WHO, rest, re.I) else None
    if verb == "ask":
        m = re.match(rf"{_WHO}\s+(not\s+)?to\s+(.*)", rest, re.I)
        if m:
            return ("Please don't " if m.group(1) else "Please ") + _person(m.group(2), True)
        m = re.match(r"(?:whether|if)\s+(.*)", rest)
        return _question(m.group(1)) if m else None
    if verb in _SUGGEST_VERBS:
        return f"{_SUGGEST_VERBS[verb]} {_person(rest, True)}"
    if verb in _OFFER_VERBS:
        return "I can " + _person(main[0].lower() + main[1:], True, subject_they=False)
    if verb in _SKIP_VERBS:
        m = re.search(r",?\s+then\s+(\w+)(.*)$", main)
        return _main_clause(m.group(1) + m.group(2)) if m and m.group(1) in _OFFER_VERBS else None
    # they/their mean the customer only if the sentence is about the customer (now "you").
    about_customer = (
        about_customer
        or bool(re.search(r"\byou\b", main))
        or bool(re.search(r"\byour?\b", _person(main, False)))
    )
    return _person(main, about_customer)


def spoken_form(sentence: str, about_customer: bool = False) -> str | None:
    """A KB sentence rewritten for the caller's ear, or ``None`` if it is agent-only.

    ``"Expedited delivery takes 2 business days and costs $25."`` → ``"... costs 25 dollars."``;
    ``"Verify identity, then block the card right away."`` → ``"I can block the card right away."``

    Args:
        sentence: one sentence of a KB article (Markdown allowed).
        about_customer: "they"/"their" in a plain statement mean the customer even if the
            sentence does not say "the customer" (its section heading does).
    """
    text = re.sub(r"(\*\*|__|`)", "", sentence).strip()
    text = re.sub(r"\$\s?1\b(?![,.]\d)", "1 dollar", text)
    text = re.sub(r"\b(an?|the|The|A|An) \$(\d[\d,]*\d|\d)\b", r"\1 \2 dollar", text)  # "a 10 dollar fee"
    text = re.sub(r"\$\s?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)", r"\1 dollars", text).replace(
        "%", " percent"
    )
    text = re.sub(r"\be\.g\.", "for example", text)
    text = re.sub(r"^(?:An|The) agent (can|cannot|may)\b", r"I \1", text)
    if re.match(r"^Agents (?:can|cannot|may)\b", text):  # "they" in the rest means us too
        text = re.sub(r"\bthey (can|cannot|may)\b", r"we \1", "We" + text[len("Agents") :])
    if not text or _META.search(text):
        return None
    prefix, main = "", text
    for m in _SPLIT_POINT.finditer(text):
        connector = m.group(0)[1:].split()[0]
        if not _SUBORDINATE.match(text) and connector != "so":
            continue
        if m.group(1).lower() in _DIRECTIVES or m.group(1) == "you":
            keep = f", {connector} " if connector in ("so", "then") else ", "
            prefix, main = _person(text[: m.start()], True) + keep, text[m.start(1) :]
            break
    said = _main_clause(main, about_customer)
    if not said:
        return None
    if prefix and _GENERATED_START.match(said):
        said = said[0].lower() + said[1:]
    if said.startswith(("I can ", "I can't ")) or " I can " in said:
        said = re.sub(r"\btransfer to\b", "transfer you to", said)
    said = " ".join((prefix + said).split()).rstrip(" ,;:.")
    said = said[0].upper() + said[1:]
    return said if said[-1] in "?!" else said + "."


def proper_nouns(bodies: Sequence[str]) -> frozenset[str]:
    """Words the KB capitalises mid-sentence (names, products): never lowercased."""
    found: set[str] = set()
    for body in bodies:
        for sentence in split_sentences(body):
            found.update(w.strip(",.;:()") for w in sentence.split()[1:] if w[:1].isupper())
    return frozenset(found | {"I", "I'd", "I'll", "I'm"})


def spoken_sentences(
    chunk: Chunk, section: int, start: int, nouns: frozenset[str]
) -> tuple[list[SpokenSentence], int]:
    """The sayable sentences of one chunk, and how many sentences it has in all.

    Args:
        chunk: a passage from :func:`chunk_article`.
        section: the chunk's index within its article.
        start: position of the chunk's first sentence within the article. Positions count
            every sentence, sayable or not, so "the next step" is the next one in the article.
        nouns: words never lowercased (:func:`proper_nouns`).
    """
    out = []
    sentences = split_sentences(chunk.text)
    heading = chunk.heading
    is_condition = re.match(r"^(?:If|When|Once)\b", heading) and not ESCALATION_HEADING.search(heading)
    condition = _person(heading, True) if is_condition else ""
    for n, sentence in enumerate(sentences):
        text = spoken_form(sentence, about_customer="you" in condition.split())
        if text:
            first = text.split()[0].strip(",.")
            out.append(
                SpokenSentence(
                    key=f"{chunk.chunk_id}.{n}",
                    section=section,
                    position=start + n,
                    heading=chunk.heading,
                    text=text,
                    keep_case=first.isupper() or first in nouns and first.lower() not in _FUNCTION_WORDS,
                    condition="" if re.match(r"^(?:If|When|Once)\b", text) else condition,
                )
            )
    return out, len(sentences)
