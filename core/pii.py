"""PII redaction applied before anything is stored or sent to a model.

Finds card numbers (Luhn-checked), account numbers, phone numbers, emails and
national ids (US SSN), written as digits or spoken as words ("four one one one ...",
"forty-one eleven", "double five", "oh") or both in one run with the punctuation a
neural recogniser writes between groups ("4111, one one one one. 1111"), and replaces
each with a typed placeholder such as ``[CARD]``. Reading numbers out of the text is
:mod:`core.pii_numbers`; this module decides which of them are identifying.
Short digit runs (amounts, dates, the last four digits of a card) are left alone:
they are what agents need and are not identifying on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.pii_numbers import number_runs

# A run of digits is masked only when it is long enough to identify someone: shorter
# ones (amounts, dates, "the last 4 digits", counts) are what agents need.
MIN_ACCOUNT_DIGITS = 8  # digits in the shortest account-like number
MIN_PHONE_DIGITS = 10  # digits in a phone number with its area code (11 with a leading 1)
CARD_DIGITS = range(13, 20)  # card numbers (PANs) are 13 to 19 digits, Luhn-checked
NATIONAL_ID_DIGITS = 9  # a US social security number
# Digit groups (as written or paused) that are a number's shape whatever is said around it.
PHONE_GROUPS = ((3, 3, 4), (1, 3, 3, 4))  # 415-555-0134, 1 800 555 0134
NATIONAL_ID_GROUPS = ((3, 2, 4),)  # 123-45-6789
# Characters before a number searched for words saying what it is ("my phone number is").
CONTEXT_CHARS = 40
# In an unfinished hypothesis, a run this long may still grow into an identifier.
PARTIAL_MIN_DIGITS = 5

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9]+(?: (?:dot|underscore|dash) [a-z0-9]+)* at [a-z0-9]+(?: dot [a-z]{2,})+\b"
)
# Phone numbers the number-run reader leaves out because they are glued to letters ("x4155550134").
_PHONE = re.compile(r"(?<!\d)(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?!\d)")
_NATIONAL_ID_CONTEXT = re.compile(r"social|ssn|security number")
_PHONE_CONTEXT = re.compile(r"phone|call|number is|reach|mobile|cell")


@dataclass(frozen=True)
class Redaction:
    kind: str  # CARD, ACCOUNT, PHONE, EMAIL, NATIONAL_ID; DIGITS (a number still being said)
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


def classify_digits(digits: str, context: str = "", groups: tuple[int, ...] = ()) -> str | None:
    """What a run of digits is, or None if it is not identifying.

    ``context`` is the text just before the run (words such as "social" or "call me on"
    decide between kinds of the same length); ``groups`` are the digit counts of the
    groups it was written or paused in, so a run shaped like a phone number or an SSN
    is one whatever is said around it.
    """
    n = len(digits)
    ctx = context.lower()
    if n in CARD_DIGITS and luhn_ok(digits):
        return "CARD"
    if n == NATIONAL_ID_DIGITS and (groups in NATIONAL_ID_GROUPS or _NATIONAL_ID_CONTEXT.search(ctx)):
        return "NATIONAL_ID"
    if n in (MIN_PHONE_DIGITS, MIN_PHONE_DIGITS + 1) and (
        groups in PHONE_GROUPS
        or _PHONE_CONTEXT.search(ctx)
        or n == MIN_PHONE_DIGITS + 1 and digits[0] == "1"
    ):
        return "PHONE"
    if n >= MIN_ACCOUNT_DIGITS:
        return "ACCOUNT"
    return None


def find_pii(text: str, partial: bool = False) -> list[Redaction]:
    """Every PII span in ``text``, non-overlapping, in order.

    Numbers are read by :func:`core.pii_numbers.number_runs`, which joins digit groups,
    number words and the punctuation between them into one digit string per run, so
    "4111-1111-1111-1111", "four one one one, 1111, ..." and "forty one eleven ..." are
    all judged on the same 16 digits, and the whole run is masked.

    With ``partial``, the text is an unfinished hypothesis: a number may still be
    growing, so any run of ``PARTIAL_MIN_DIGITS`` or more digits is masked too (as
    ``[DIGITS]``).
    """
    found: list[Redaction] = []

    def add(kind: str, start: int, end: int) -> None:
        if not any(r.start < end and start < r.end for r in found):
            found.append(Redaction(kind, start, end))

    for m in _EMAIL.finditer(text):
        add("EMAIL", m.start(), m.end())
    for m in _SPOKEN_EMAIL.finditer(text.lower()):
        add("EMAIL", m.start(), m.end())
    for run in number_runs(text):
        kind = classify_digits(run.digits, text[max(0, run.start - CONTEXT_CHARS) : run.start], run.groups)
        if kind is None and partial and len(run.digits) >= PARTIAL_MIN_DIGITS:
            kind = "DIGITS"
        if kind:
            add(kind, run.start, run.end)
    for m in _PHONE.finditer(text):
        add("PHONE", m.start(), m.end())
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
