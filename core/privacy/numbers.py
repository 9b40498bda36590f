"""Runs of spoken or written numbers in a transcript, as digit strings with their spans.

The embedded recogniser (Moonshine) writes numbers however it heard them: digit groups
("4111 1111 1111 1111"), number words ("four one one one", "forty-one eleven"), both in
one run ("four one one one, 1111, one one one one") and with the punctuation it adds at
pauses ("4 1 1 1. 1 1 1 1."). PII redaction cannot decide what a number is until it has
all of its digits, so this module does only that: it finds each maximal run of number
tokens and says which digits were said and where. :mod:`core.privacy.pii` then applies its length
and shape rules to the digit string and masks the run's whole span.

What is deliberately *not* part of a run, because it is a quantity rather than an
identifier and must never be glued to its neighbours into something long enough to mask:
money ("$500", "thirty-nine dollars", "five hundred dollars"), times ("2:30"), dates
("2024-03-12", "12/26", "March 3, 2024"), decimals ("12.50"), numbers with thousands
separators ("1,250") and digits glued to letters ("3rd", "10am", "A123").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Number words and the value each stands for. "oh" and "o" are zero only inside a number:
# on their own they are an interjection and a letter.
_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_UNITS |= {"oh": 0, "o": 0}
_ZERO_LETTERS = frozenset({"oh", "o"})
_TEENS = {
    w: 10 + i
    for i, w in enumerate("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())
}
_TENS = {w: 20 + 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
# "double four" = "44", "triple one" = "111".
_MULTIPLIERS = {"double": 2, "triple": 3}
# Words spoken between digit groups the way "-" is written: "four one five dash five five five".
_GROUP_WORDS = frozenset({"dash", "hyphen"})

# --- tokens -----------------------------------------------------------------------------
# Numbers whose written form says what they are: one token each, never part of a run.
_MONEY = r"[$£€¥]\s?\d[\d,]*(?:\.\d+)?"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19|20)\d\d"
_NUMERIC_DATE = (
    rf"{_YEAR}(?P<ymd>[-/.]){_MONTH}(?P=ymd){_DAY}"  # 2024-03-12
    rf"|{_DAY}(?P<dmy>[-/.]){_DAY}(?P=dmy)(?:{_YEAR}|\d\d)"  # 03/12/2024, 12.03.24
)
_MONTH_NAME = (
    r"(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_NAMED_DATE = rf"\b{_MONTH_NAME}\.?\s+\d{{1,2}}(?i:st|nd|rd|th)?,?\s+{_YEAR}(?!\d)"  # March 3, 2024
_TIME = r"\d{1,2}:\d\d(?::\d\d)?"  # 2:30, 10:45:00
_THOUSANDS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 1,250 and 1,250.00
_DECIMAL = r"\d+\.\d+"  # 12.50 (one dot; "415.555.0134" is a chain, not a decimal)
_IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"  # 192.168.1.1 in a logged message: a host, not a caller
# Whole-token boundaries: not the middle of a longer chain of digits and separators.
_FORMATTED = (
    rf"(?<![\w.,:/-])(?:{_NUMERIC_DATE}|{_TIME}|{_THOUSANDS}|{_IPV4}|{_DECIMAL})(?!\d|[-/.,:]\d)"
)
_TOKEN = re.compile(
    rf"(?P<other>{_MONEY}|{_NAMED_DATE}|{_FORMATTED})|(?P<word>[A-Za-z0-9]+(?:'[A-Za-z]+)*)"
)

# Between the words of one number: "forty one", "forty-one", "five hundred".
_JOIN = re.compile(r"[ \t]*-?[ \t]*")
# Between digit groups: spaces and the punctuation a recogniser writes at a pause, but no
# line break (separate log lines are separate numbers) and no ":" or "/" (times, dates).
_SEPARATOR = re.compile(r"[ \t,;.()\-–—…]*")
# After a run: the last number in it is an amount ("39 dollars", "five hundred thousand").
_AMOUNT_AFTER = re.compile(
    r"[ \t]*(?:%|(?i:dollars?|bucks|cents?|pounds?|quid|euros?|percent|grand|thousand|million|billion)\b)"
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "digits", "word" or "other" (a quantity or a mixed token such as "3rd")
    text: str  # lower case
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    out = []
    for m in _TOKEN.finditer(text):
        word = m.group("word")
        if word is None:
            kind = "other"
        elif word.isdigit():
            kind = "digits"
        elif not any(ch.isdigit() for ch in word):
            kind = "word"
        else:
            kind = "other"
        out.append(_Token(kind, m.group(0).lower(), m.start(), m.end()))
    return out


@dataclass(frozen=True)
class _Piece:
    """One number as said: a digit group, "seven", "forty-one", "double four", "five hundred"."""

    digits: str
    start: int
    end: int
    next_token: int  # index of the first token after it
    spelled: bool  # said in words (False: written as digits)


class _Reader:
    """Reads number pieces out of one text's tokens."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)

    def joined(self, k: int) -> _Token | None:
        """Token ``k`` if it continues the word before it as part of the same number."""
        if 0 < k < len(self.toks) and _JOIN.fullmatch(self.text, self.toks[k - 1].end, self.toks[k].start):
            return self.toks[k]
        return None

    def below_hundred(self, k: int) -> tuple[int, int] | None:
        """A number 1-99 in words starting at token ``k``, as (value, next token index)."""
        tok = self.toks[k] if k < len(self.toks) else None
        if tok is None:
            return None
        if tok.text in _TENS:
            unit = self.joined(k + 1)
            if unit is not None and unit.text in _UNITS and _UNITS[unit.text] and unit.text not in _ZERO_LETTERS:
                return _TENS[tok.text] + _UNITS[unit.text], k + 2
            return _TENS[tok.text], k + 1
        if tok.text in _TEENS:
            return _TEENS[tok.text], k + 1
        if tok.text in _UNITS and _UNITS[tok.text]:
            return _UNITS[tok.text], k + 1
        return None

    def piece(self, k: int) -> _Piece | None:
        """The number piece starting at token ``k``, or None if token ``k`` is no number."""
        tok = self.toks[k]
        if tok.kind == "digits":
            return _Piece(tok.text, tok.start, tok.end, k + 1, spelled=False)
        if tok.kind != "word":
            return None
        if tok.text in _MULTIPLIERS:
            said = self.joined(k + 1)
            if said is not None and said.text in _UNITS:
                digit = str(_UNITS[said.text])
            elif said is not None and said.kind == "digits" and len(said.text) == 1:
                digit = said.text
            else:
                return None  # "double check"
            return _Piece(digit * _MULTIPLIERS[tok.text], tok.start, said.end, k + 2, spelled=True)
        if tok.text in _UNITS or tok.text in _TEENS:
            value = _UNITS.get(tok.text, _TEENS.get(tok.text, 0))
            hundred = self.joined(k + 1)
            if value and hundred is not None and hundred.text == "hundred":
                return self._hundreds(value, tok.start, k + 2)
            return _Piece(str(value), tok.start, tok.end, k + 1, spelled=True)
        small = self.below_hundred(k)
        if small is None:
            return None
        value, nxt = small
        return _Piece(str(value), tok.start, self.toks[nxt - 1].end, nxt, spelled=True)

    def _hundreds(self, value: int, start: int, k: int) -> _Piece:
        """ "eight hundred", "five hundred and five", "nineteen hundred eighty four".

        A single digit right after "hundred" without "and" starts the next piece: in
        "one eight hundred five five five ..." the caller is reading out digits.
        """
        end, nxt, rest = self.toks[k - 1].end, k, 0
        said_and = self.joined(k) is not None and self.toks[k].text == "and"
        tail_at = k + 1 if said_and else k
        tail = self.below_hundred(tail_at) if self.joined(tail_at) is not None else None
        if tail is not None and (said_and or self.toks[tail_at].text not in _UNITS):
            rest, nxt = tail
            end = self.toks[nxt - 1].end
        return _Piece(str(value * 100 + rest), start, end, nxt, spelled=True)


@dataclass(frozen=True)
class NumberRun:
    """A maximal run of numbers said one after the other, read as one digit string.

    ``groups`` are the digit counts of the groups as written or paused: (3, 3, 4) for
    "415-555-0134" or "four one five, five five five, oh one three four"; digits written
    with spaces between them are separate groups, number words with only spaces between
    them are one group.
    """

    start: int
    end: int
    digits: str
    groups: tuple[int, ...]


def number_runs(text: str) -> list[NumberRun]:
    """Every run of number tokens in ``text``, in order (short ones included)."""
    reader = _Reader(text)
    toks = reader.toks
    runs: list[NumberRun] = []
    i = 0
    while i < len(toks):
        first = reader.piece(i)
        if first is None:
            i += 1
            continue
        pieces, gaps = [first], []
        j = first.next_token
        while j < len(toks):
            gap, k = text[pieces[-1].end : toks[j].start], j
            said_dash = toks[k].kind == "word" and toks[k].text in _GROUP_WORDS
            if said_dash:  # "five five five dash oh one ...": the word stands for a written "-"
                k += 1
                if k >= len(toks):
                    break
                gap += " " + text[toks[j].end : toks[k].start]
            if not _SEPARATOR.fullmatch(gap):
                break
            piece = reader.piece(k)
            if piece is None:
                break
            pieces.append(piece)
            gaps.append("-" if said_dash else gap)
            j = piece.next_token
        i = j
        # "Oh, 4111 ..." and "... 1111, oh, and": an interjection, not a zero
        if _is_oh(text, pieces[0]) and (not gaps or gaps[0].strip()):
            pieces, gaps = pieces[1:], gaps[1:]
        if pieces and _is_oh(text, pieces[-1]) and gaps and gaps[-1].strip():
            pieces, gaps = pieces[:-1], gaps[:-1]
        if pieces and _AMOUNT_AFTER.match(text, pieces[-1].end):
            pieces, gaps = pieces[:-1], gaps[:-1]  # "... thirty-nine dollars": an amount
        if pieces:
            runs.append(_run(text, pieces, gaps))
    return runs


def _is_oh(text: str, piece: _Piece) -> bool:
    return text[piece.start : piece.end].lower() in _ZERO_LETTERS


def _run(text: str, pieces: list[_Piece], gaps: list[str]) -> NumberRun:
    groups = [len(pieces[0].digits)]
    for gap, before, after in zip(gaps, pieces[:-1], pieces[1:], strict=True):
        if gap.strip() or not before.spelled or not after.spelled:
            groups.append(len(after.digits))
        else:
            groups[-1] += len(after.digits)
    start = pieces[0].start
    before = text[start - 1] if start else ""
    if before == "+" or before == "(" and gaps and gaps[0].startswith(")"):  # +1 415 ..., (415) 555-0134
        start -= 1
    return NumberRun(start, pieces[-1].end, "".join(p.digits for p in pieces), tuple(groups))
