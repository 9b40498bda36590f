"""PII redaction applied before anything is stored or sent to a model.

Finds card numbers (Luhn-checked), account numbers, phone numbers, emails and
national ids (US SSN), written as digits or spoken as words ("four one one one ...",
"double five", "oh"), and replaces each with a typed placeholder such as ``[CARD]``.
Short digit runs (amounts, dates, the last four digits of a card) are left alone:
they are what agents need and are not identifying on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
_MULTIPLIERS = {"double": 2, "triple": 3}
MIN_ACCOUNT_DIGITS = 8
MIN_PHONE_DIGITS = 10

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9]+(?: (?:dot|underscore|dash) [a-z0-9]+)* at [a-z0-9]+(?: dot [a-z]{2,})+\b"
)
_SSN = re.compile(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b")
_PHONE = re.compile(r"(?<!\d)(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?!\d)")
_DIGIT_RUN = re.compile(r"(?<![\w])\d(?:[ -]?\d){7,22}(?![\w])")


@dataclass(frozen=True)
class Redaction:
    kind: str  # CARD, ACCOUNT, PHONE, EMAIL, NATIONAL_ID
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def classify_digits(digits: str, context: str = "") -> str | None:
    """What a run of digits is, or None if it is not identifying."""
    n = len(digits)
    ctx = context.lower()
    if 13 <= n <= 19 and luhn_ok(digits):
        return "CARD"
    if n == 9 and re.search(r"social|ssn|security number", ctx):
        return "NATIONAL_ID"
    if n in (10, 11) and (re.search(r"phone|call|number is|reach|mobile|cell", ctx) or n == 11 and digits[0] == "1"):
        return "PHONE"
    if n >= MIN_ACCOUNT_DIGITS:
        return "ACCOUNT"
    return None


def _spoken_runs(text: str, min_digits: int = MIN_ACCOUNT_DIGITS) -> list[tuple[int, int, str]]:
    """Spans of spoken digit sequences as (start, end, digits)."""
    runs: list[tuple[int, int, str]] = []
    tokens = [(m.start(), m.end(), m.group(0).lower()) for m in re.finditer(r"[A-Za-z]+|\d+", text)]
    i = 0
    while i < len(tokens):
        digits = ""
        start = tokens[i][0]
        end = start
        j = i
        while j < len(tokens):
            tok = tokens[j][2]
            if tok in _MULTIPLIERS and j + 1 < len(tokens) and tokens[j + 1][2] in _DIGIT_WORDS:
                digits += _DIGIT_WORDS[tokens[j + 1][2]] * _MULTIPLIERS[tok]
                end = tokens[j + 1][1]
                j += 2
            elif tok in _DIGIT_WORDS and not (tok in ("o", "oh") and not digits):
                digits += _DIGIT_WORDS[tok]
                end = tokens[j][1]
                j += 1
            elif tok.isdigit() and digits:
                digits += tok
                end = tokens[j][1]
                j += 1
            else:
                break
        if len(digits) >= min_digits:
            runs.append((start, end, digits))
            i = j
        else:
            i = max(j, i + 1)
    return runs


PARTIAL_MIN_DIGITS = 5


def find_pii(text: str, partial: bool = False) -> list[Redaction]:
    """Every PII span in ``text``, non-overlapping, in order.

    With ``partial``, the text is an unfinished hypothesis: a number may still be
    growing, so any run of ``PARTIAL_MIN_DIGITS`` or more digits is masked too.
    """
    found: list[Redaction] = []

    def add(kind: str, start: int, end: int) -> None:
        if not any(r.start < end and start < r.end for r in found):
            found.append(Redaction(kind, start, end))

    for m in _EMAIL.finditer(text):
        add("EMAIL", m.start(), m.end())
    for m in _SPOKEN_EMAIL.finditer(text.lower()):
        add("EMAIL", m.start(), m.end())
    for m in _SSN.finditer(text):
        add("NATIONAL_ID", m.start(), m.end())
    for m in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        kind = classify_digits(digits, text[max(0, m.start() - 40) : m.start()])
        if kind:
            add(kind, m.start(), m.end())
    for m in _PHONE.finditer(text):
        add("PHONE", m.start(), m.end())
    min_run = PARTIAL_MIN_DIGITS if partial else MIN_ACCOUNT_DIGITS
    for start, end, digits in _spoken_runs(text, min_run):
        kind = classify_digits(digits, text[max(0, start - 40) : start])
        if kind is None and partial:
            kind = "DIGITS"
        if kind:
            add(kind, start, end)
    if partial:
        for m in re.finditer(rf"(?<!\d)\d(?:[ -]?\d){{{PARTIAL_MIN_DIGITS - 1},}}(?!\d)", text):
            add("DIGITS", m.start(), m.end())
    return sorted(found, key=lambda r: r.start)


def redact(text: str, partial: bool = False) -> tuple[str, list[Redaction]]:
    """Replace every PII span with ``[KIND]``; returns the new text and what was found."""
    spans = find_pii(text, partial)
    out = []
    pos = 0
    for r in spans:
        out.append(text[pos : r.start])
        out.append(f"[{r.kind}]")
        pos = r.end
    out.append(text[pos:])
    return "".join(out), spans


class Redactor:
    """Configurable redaction (on by default); ``enabled=False`` passes text through."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __call__(self, text: str, partial: bool = False) -> str:
        return redact(text, partial)[0] if self.enabled else text
