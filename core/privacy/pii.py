"""PII redaction applied before anything is stored or sent to a model.

Finds card numbers (Luhn-checked), account numbers, IBANs (mod-97-checked), phone
numbers, emails (also "name(at)host.com" and spoken "name at host dot com"), national ids
(US SSN), and card verification values and PINs (which card rules forbid storing at all),
written as digits, glued to words ("card4111..."), or spoken as words ("four one one one
...", "forty-one eleven", "double five", "oh") or both in one run with the punctuation a
neural recogniser writes between groups ("4111, one one one one. 1111"), and replaces
each with a typed placeholder such as ``[CARD]``. Reading numbers out of the text is
:mod:`core.privacy.numbers`; this module decides which of them are identifying.
Short digit runs (amounts, dates, the last four digits of a card) are left alone:
they are what agents need and are not identifying on their own.

A caller reading a number with pauses says it over several utterances ("my card number
is 4111" … "1111" … "1111"), and each is stored as it is finished. :class:`Redactor` is
made per call and remembers whether the caller's last line ended in a number being read
out; a number at the end of a line in a number context, and the numbers that continue
it at the start of the next lines, are masked as ``[DIGITS]`` before they are stored, so
no group of the sequence is ever saved in clear.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.privacy.numbers import number_runs

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

_EMAIL = re.compile(
    r"\b[\w.+-]+\s?(?:@|[(\[{<]\s?at\s?[)\]}>])\s?[\w-]+(?:\s?(?:\.|[(\[{<]\s?dot\s?[)\]}>])\s?[\w-]+)+\b",
    re.IGNORECASE,
)
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9]+(?: (?:dot|underscore|dash) [a-z0-9]+)* at [a-z0-9]+(?: dot [a-z]{2,})+\b"
)
# Phone numbers the number-run reader leaves out because they are glued to letters ("x4155550134").
_PHONE = re.compile(r"(?<!\d)(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?!\d)")
_NATIONAL_ID_CONTEXT = re.compile(r"social|ssn|security number")
_PHONE_CONTEXT = re.compile(r"phone|call|number is|reach|mobile|cell")
# Digits glued to letters ("card4111111111111111", "acct12345678x"), which the number
# reader leaves out as one word.
_GLUED_DIGITS = re.compile(r"(?<=[A-Za-z_])\d{8,}|(?<!\d)\d{8,}(?=[A-Za-z_])")
# IBAN: country, check digits, then up to 30 letters/digits, written whole or in groups of four.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.IGNORECASE)
# Card verification values and PINs: short, so only their cue says what they are.
_SECRET_CUE = re.compile(
    r"\b(?P<cvv>cvv2?|cvc2?|csc|cid|security code|(?:code|digits?|numbers?) on the back)"
    r"|\b(?P<pin>pin(?: number| code)?|passcode|pass code)\b",
    re.IGNORECASE,
)
_CUE_TO_NUMBER = re.compile(r"[\s,:;.'\-]*(?:(?:is|was|it's|its|are|number|code|my|the|um|uh|er|,)[\s,:;.\-]*)*$", re.IGNORECASE)
SECRET_DIGITS = {"CVV": range(3, 5), "PIN": range(4, 7)}


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

    Numbers are read by :func:`core.privacy.numbers.number_runs`, which joins digit groups,
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
    for m in _IBAN.finditer(text):
        # the pattern may run on into the next word ("... 7654 32 thanks"): the longest
        # prefix ending at a word boundary that passes the check is the IBAN
        ends = [m.end()] + [m.start() + i for i, ch in enumerate(m.group(0)) if ch == " "][::-1]
        end = next((e for e in ends if iban_ok(text[m.start() : e])), None)
        if end is not None:
            add("IBAN", m.start(), end)
    for run in number_runs(text):
        context = text[max(0, run.start - CONTEXT_CHARS) : run.start]
        kind = secret_kind(run.digits, context) or classify_digits(run.digits, context, run.groups)
        if kind is None and partial and len(run.digits) >= PARTIAL_MIN_DIGITS:
            kind = "DIGITS"
        if kind:
            add(kind, run.start, run.end)
    for m in _PHONE.finditer(text):
        add("PHONE", m.start(), m.end())
    for m in _GLUED_DIGITS.finditer(text):
        kind = classify_digits(m.group(0), text[max(0, m.start() - CONTEXT_CHARS) : m.start()])
        if kind:
            add(kind, m.start(), m.end())
    return sorted(found, key=lambda r: r.start)


def iban_ok(candidate: str) -> bool:
    """ISO 13616 check: the country and check digits moved to the end, mod 97 is 1."""
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34 or not iban.isalnum():
        return False
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - the last match is the one wanted
        pass
    return last


def secret_kind(digits: str, context: str) -> str | None:
    """CVV or PIN when the words just before the digits name one ("the cvv is 737")."""
    cue = _last(_SECRET_CUE, context)
    if cue is None or not _CUE_TO_NUMBER.match(context, cue.end()):
        return None
    kind = "CVV" if cue.group("cvv") else "PIN"
    return kind if len(digits) in SECRET_DIGITS[kind] else None


def redact(text: str, partial: bool = False) -> tuple[str, list[Redaction]]:
    """Replace every PII span with ``[KIND]``; returns the new text and what was found."""
    spans = find_pii(text, partial)
    return _apply(text, spans), spans


# --- numbers read out over several utterances ---------------------------------------
SEQUENCE_GAP_S = 20.0  # a longer pause ends a number being read out
OPEN_MIN_DIGITS = 3  # digits at the end of a line, in a number context, that may go on
OPEN_ANY_DIGITS = 6  # digits at the end of a line that are an identifier being read, whatever the words
CONTINUE_MIN_DIGITS = 2  # digits at the start of the next line that continue it ("2 charges" stays)
_NUMBER_CUE = re.compile(
    r"\b(?:card|account|acct|number|phone|mobile|cell|routing|sort code|iban|social|ssn|pin|passcode"
    r"|cvv|cvc|csc|security code|digits|reference|member id|policy)\b",
    re.IGNORECASE,
)
_LAST_DIGITS = re.compile(r"\b(?:ending|ends|last (?:four|4|three|3|two|2|digits)|final (?:four|4|digits))\b", re.IGNORECASE)
_FILLER_BEFORE = re.compile(
    r"[\W_]*(?:(?:and|then|um+|uh+|er+|erm|so|okay|ok|it's|its|is|the|rest|next|that's|thats|yes|yeah)\b[\W_]*)*",
    re.IGNORECASE,
)
_NOTHING_AFTER = re.compile(r"[\s,;.:!?…\-–—]*")
_YEAR = re.compile(r"(?:19|20)\d\d")


def _apply(text: str, spans: list[Redaction]) -> str:
    out, pos = [], 0
    for r in spans:
        out.append(text[pos : r.start])
        out.append(f"[{r.kind}]")
        pos = r.end
    out.append(text[pos:])
    return "".join(out)


class Redactor:
    """Redaction for one call (on by default; ``enabled=False`` passes text through).

    Call it on each of the caller's finished lines in order: it remembers, for
    :data:`SEQUENCE_GAP_S`, whether the last line ended in a number being read out, and
    masks the number that goes on at the start of the next line as well (see the module
    docstring). ``partial`` text (still being spoken) and ``peek`` text (a line's early
    decode) are judged against that memory but do not change it.
    """

    def __init__(self, enabled: bool = True, clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self._clock = clock
        self._open_until = float("-inf")

    def __call__(self, text: str, partial: bool = False, peek: bool = False) -> str:
        if not self.enabled:
            return text
        spans = find_pii(text, partial)
        more, still_open = self._sequence(text)
        for r in more:
            if not any(s.start < r.end and r.start < s.end for s in spans):
                spans.append(r)
        if not (partial or peek):
            self._open_until = self._clock() + SEQUENCE_GAP_S if still_open else float("-inf")
        return _apply(text, sorted(spans, key=lambda r: r.start))

    def _sequence(self, text: str) -> tuple[list[Redaction], bool]:
        """Spans a number read out across lines adds to ``text``, and whether it may go on."""
        runs = number_runs(text)
        continuing = self._clock() <= self._open_until
        spans: list[Redaction] = []
        lead = runs[0] if runs and _FILLER_BEFORE.fullmatch(text, 0, runs[0].start) else None
        only_number = lead is not None and len(runs) == 1 and _NOTHING_AFTER.fullmatch(text, lead.end)
        if continuing and lead is not None and (len(lead.digits) >= CONTINUE_MIN_DIGITS or only_number):
            spans.append(Redaction("DIGITS", lead.start, lead.end))
        tail = runs[-1] if runs and _NOTHING_AFTER.fullmatch(text, runs[-1].end) else None
        if tail is None:  # "my card number is" … the number comes in the next line
            cue = _last(_NUMBER_CUE, text)
            return spans, cue is not None and bool(_CUE_TO_NUMBER.fullmatch(text, cue.end()))
        before = text[max(0, tail.start - CONTEXT_CHARS) : tail.start]
        if _LAST_DIGITS.search(before):  # "the card ending in 4472": complete, and not identifying
            return spans, False
        cued = bool(_NUMBER_CUE.search(text[: tail.start])) or continuing
        n = len(tail.digits)
        opens = n >= OPEN_ANY_DIGITS or (n >= OPEN_MIN_DIGITS and (cued or only_number)
                                           and not (n == 4 and _YEAR.fullmatch(tail.digits) and not cued))
        if opens:
            spans.append(Redaction("DIGITS", tail.start, tail.end))
        return spans, opens
