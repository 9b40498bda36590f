"""What a caller turn says: slot values (amounts, dates, card, merchant, last four) and its dialogue act.

Everything here is a pure function over recogniser-style text (lowercase, no
punctuation, numbers as words) or typed text (digits and ``$`` are normalised first).
The agent's memory (:mod:`core.conversation.memory`) and the call summary both read it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.language.text import normalize


def _words(text: str) -> list[str]:
    return text.split()


_UNITS = {w: i for i, w in enumerate(_words("zero one two three four five six seven eight nine"))}
_TEENS = {w: i + 10 for i, w in enumerate(_words("ten eleven twelve thirteen fourteen fifteen sixteen"))}
_TEENS.update({"seventeen": 17, "eighteen": 18, "nineteen": 19})
_TENS = {w: (i + 2) * 10 for i, w in enumerate(_words("twenty thirty forty fifty sixty seventy eighty"))}
_TENS["ninety"] = 90
_SCALES = {"thousand": 1_000, "million": 1_000_000}
_CURRENCY = frozenset(["dollar", "dollars", "bucks", "usd"])
_DIGIT_WORDS = {**_UNITS, "oh": 0, "o": 0}

_WEEKDAYS = _words("monday tuesday wednesday thursday friday saturday sunday")
_MONTHS = _words("january february march april may june july august september october november december")
_ORDINALS = {
    w: i + 1
    for i, w in enumerate(
        _words(
            "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
            "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
        )
    )
}
_ORDINALS.update({f"twenty {w}": 20 + n for w, n in list(_ORDINALS.items())[:9]})
_ORDINALS.update({"thirtieth": 30, "thirty first": 31})
_ORDINAL_ALT = "|".join(sorted(_ORDINALS, key=len, reverse=True))
_CARDINAL_ALT = (
    r"(?:twenty|thirty)(?: (?:one|two|three|four|five|six|seven|eight|nine))?"
    r"|(?:thir|four|fif|six|seven|eigh|nine)teen|ten|eleven|twelve|one|two|three|four|five|six|seven|eight|nine"
)
_MONTH_ALT = "|".join(_MONTHS)
_COUNT_WORDS = dict(zip(_words("a an one two three four five six"), (1, 1, 1, 2, 3, 4, 5, 6), strict=True))
_COUNT_WORDS.update({"a couple of": 2, "a few": 3})
_DATE_PATTERNS = [
    r"the day before yesterday",
    r"yesterday(?: (?:morning|afternoon|evening))?",
    r"today|tonight|this (?:morning|afternoon|evening)|last night",
    rf"(?:last|this|next|on) (?:{'|'.join(_WEEKDAYS)})",
    r"(?:last|this) (?:week|month|weekend)",
    rf"(?:{'|'.join(_COUNT_WORDS)}) (?:day|days|week|weeks|month|months) ago",
    rf"(?:{_MONTH_ALT}) (?:the )?(?:{_ORDINAL_ALT})",
    rf"(?:{_MONTH_ALT.replace('may|', '')}) (?:{_CARDINAL_ALT})",  # not "i may one day"
    rf"the (?:{_ORDINAL_ALT}) of (?:{_MONTH_ALT})",
    rf"(?:on )?(?:{'|'.join(_WEEKDAYS)})",
]
_DATE = re.compile(r"\b(" + "|".join(f"(?:{p})" for p in _DATE_PATTERNS) + r")\b")

# Words that end a merchant phrase ("at a grocery store yesterday and ...").
_MERCHANT_STOP = frozenset(
    _words(
        "yesterday today tonight this last on for and but so when because with in i it it's they "
        "that which who was is were then about around like before after"
    )
    + _WEEKDAYS
)
# "at" phrases that are not places of purchase.
_NOT_MERCHANT = frozenset(
    _words("least all home work night first once moment times time point end noon midnight")
)
_DETERMINERS = frozenset(["a", "an", "the", "my", "this", "that"])
MERCHANT_MAX_WORDS = 4
_LAST_FOUR_FILLER = frozenset(_words("are is in with of the my card number digits it's"))
_LAST_FOUR_CUE = re.compile(
    r"\b(?:ending in|ending with|ending|ends in|ends with|last four digits(?: are| is)?|last four(?: are| is)?|last 4(?: digits)?(?: are| is)?)\b"
)


@dataclass(frozen=True)
class Slots:
    """Values found in one caller turn (``None``/empty when absent)."""

    card_type: str | None = None  # debit | credit | virtual
    card_network: str | None = None  # visa | mastercard
    amounts: tuple[float, ...] = ()
    dates: tuple[str, ...] = ()
    merchant: str | None = None
    last_four: str | None = None

    def __bool__(self) -> bool:
        return any(
            (self.card_type, self.card_network, self.amounts, self.dates, self.merchant, self.last_four)
        )


# --- numbers ----------------------------------------------------------------------------
def parse_number(tokens: Sequence[str], start: int = 0) -> tuple[float, int] | None:
    """Read a spoken number at ``tokens[start:]``.

    ``"seven hundred and fifty"`` → 750, ``"one thousand two hundred"`` → 1200,
    ``"fifteen hundred"`` → 1500, ``"a hundred"`` → 100, ``"forty two point five"`` → 42.5.
    A digit after a digit ends the number (``"one two"`` is two numbers, not three).

    Returns:
        ``(value, tokens consumed)``, or ``None`` if no number starts at ``start``.
    """
    total = current = 0.0
    i = start
    last = ""  # kind of the previous token: unit, teen, tens, hundred, scale
    seen = False
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in ("a", "an") and not seen and nxt in ("hundred", *_SCALES):
            current, last = 1.0, "unit"
        elif tok == "and" and seen and (nxt in _UNITS or nxt in _TEENS or nxt in _TENS):
            pass
        elif tok in _UNITS and last not in ("unit", "teen"):
            current += _UNITS[tok]
            last = "unit"
        elif tok in _TEENS and last in ("", "hundred", "scale"):
            current += _TEENS[tok]
            last = "teen"
        elif tok in _TENS and last in ("", "hundred", "scale"):
            current += _TENS[tok]
            last = "tens"
        elif tok == "hundred" and last in ("unit", "teen", "tens"):
            current = current * 100
            last = "hundred"
        elif tok in _SCALES and seen and last != "scale":
            total += (current or 1) * _SCALES[tok]
            current, last = 0.0, "scale"
        elif tok == "point" and seen and nxt in _UNITS:
            digits = ""
            while i + 1 < len(tokens) and tokens[i + 1] in _UNITS:
                i += 1
                digits += str(_UNITS[tokens[i]])
            return total + current + float("0." + digits), i + 1 - start
        else:
            break
        seen = True
        i += 1
    if not seen:
        return None
    if tokens[i - 1] in ("and", "a", "an"):  # "a" or "and" without a number after it
        i -= 1
    return total + current, i - start


def extract_amounts(text: str) -> tuple[float, ...]:
    """Money amounts: ``"forty two dollars"``, ``"$42"``, ``"twelve dollars and fifty cents"``."""
    tokens = normalize(text).split()
    amounts: list[float] = []
    i = 0
    while i < len(tokens):
        parsed = parse_number(tokens, i)
        if parsed is None:
            i += 1
            continue
        value, n = parsed
        j = i + n
        if j < len(tokens) and tokens[j] in _CURRENCY:
            j += 1
            if j + 1 < len(tokens) and tokens[j] == "and":
                cents = parse_number(tokens, j + 1)
                if cents and j + 1 + cents[1] < len(tokens) and tokens[j + 1 + cents[1]] in ("cents", "cent"):
                    value += cents[0] / 100
                    j += 2 + cents[1]
            amounts.append(round(value, 2))
        elif j < len(tokens) and tokens[j] in ("cents", "cent"):
            amounts.append(round(value / 100, 2))
            j += 1
        i = max(j, i + 1)
    return tuple(amounts)


def spoken_amount(value: float) -> str:
    """How a reply says an amount: ``42.0`` → ``"42"``, ``1200`` → ``"1,200"``, ``12.5`` → ``"12.50"``."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


# --- other slots -------------------------------------------------------------------------
def extract_card(text: str) -> tuple[str | None, str | None]:
    """``(card type, card network)``: ``"my visa debit card"`` → ``("debit", "visa")``."""
    words = normalize(text).replace("master card", "mastercard").split()
    card_type = network = None
    for i, word in enumerate(words):
        if word in ("visa", "mastercard"):
            network = word
        elif word in ("debit", "credit", "virtual") and "card" in words[i + 1 : i + 3]:
            card_type = word
    return card_type, network


def extract_dates(text: str) -> tuple[str, ...]:
    """Spoken dates as said: ``"yesterday"``, ``"last tuesday"``, ``"march third"``."""
    found = []
    text = re.sub(r"\b(\d{1,2})(?:st|nd|rd|th)\b", r"\1", text.lower())  # "3rd" -> "3"
    for match in _DATE.finditer(normalize(text)):
        phrase = match.group(1)
        found.append(phrase[3:] if phrase.startswith("on ") else phrase)
    return tuple(found)


def resolve_date(phrase: str, today: dt.date) -> dt.date | None:
    """The calendar date a spoken phrase from :func:`extract_dates` means, if it names one.

    Weekdays without "next" mean the most recent such day (callers report the past).
    """
    words = phrase.split()
    if phrase in ("today", "tonight", "this morning", "this afternoon", "this evening"):
        return today
    if phrase.startswith("yesterday") or phrase == "last night":
        return today - dt.timedelta(days=1)
    if phrase == "the day before yesterday":
        return today - dt.timedelta(days=2)
    if words[-1] in _WEEKDAYS:
        target = _WEEKDAYS.index(words[-1])
        if words[0] == "next":
            return today + dt.timedelta(days=(target - today.weekday() - 1) % 7 + 1)
        back = (today.weekday() - target) % 7 or (7 if words[0] == "last" else 0)
        return today - dt.timedelta(days=back)
    if words[-1] == "ago":
        count = _COUNT_WORDS.get(" ".join(words[:-2]), 0)
        unit_days = {"day": 1, "week": 7, "month": 30}[words[-2].rstrip("s")]
        return today - dt.timedelta(days=count * unit_days)
    month = next((m for m in _MONTHS if m in words), None)
    if month:
        rest = " ".join(w for w in words if w not in (month, "the", "of"))
        day = _ORDINALS.get(rest)
        if day is None:
            parsed = parse_number(rest.split())
            day = int(parsed[0]) if parsed else None
        if day and 1 <= day <= 31:
            try:
                candidate = dt.date(today.year, _MONTHS.index(month) + 1, day)
            except ValueError:
                return None
            return candidate if candidate <= today else candidate.replace(year=today.year - 1)
    return None


def extract_merchant(text: str) -> str | None:
    """The place after "at": ``"forty two dollars at a grocery store yesterday"`` → ``"a grocery store"``."""
    words = normalize(text).split()
    for i, word in enumerate(words):
        head = next((w for w in words[i + 1 : i + 3] if w not in _DETERMINERS), "")
        if word != "at" or not head or head in _NOT_MERCHANT:
            continue
        if parse_number(words, i + 1) is not None:
            continue  # "at three pm"
        phrase: list[str] = []
        for w in words[i + 1 : i + 1 + MERCHANT_MAX_WORDS]:
            if w in _MERCHANT_STOP:
                break
            phrase.append(w)
        if phrase and phrase[-1] not in _DETERMINERS:
            return " ".join(phrase)
    return None


def extract_last_four(text: str) -> str | None:
    """Last four card digits: ``"ending in one two three four"``, ``"last four are 8130"``."""
    raw = re.search(_LAST_FOUR_CUE.pattern + r"\D{0,12}?(\d{4})\b", text.lower())
    if raw:
        return raw.group(1)
    words = normalize(text).split()
    joined = " ".join(words)
    cue = _LAST_FOUR_CUE.search(joined)
    if cue is None:
        return None
    rest = joined[cue.end() :].split()
    while rest and rest[0] in _LAST_FOUR_FILLER:
        rest.pop(0)
    digits = ""
    i = 0
    while i < len(rest) and len(digits) < 4:
        w = rest[i]
        if w in _DIGIT_WORDS:
            digits += str(_DIGIT_WORDS[w])
        elif w in _TEENS:
            digits += str(_TEENS[w])
        elif w in _TENS:  # "eighty one thirty"
            unit = (
                rest[i + 1] if i + 1 < len(rest) and rest[i + 1] in _UNITS and rest[i + 1] != "zero" else None
            )
            digits += str(_TENS[w] + (_UNITS[unit] if unit else 0))
            i += 1 if unit else 0
        else:
            break
        i += 1
    return digits if len(digits) == 4 else None


def extract_slots(text: str) -> Slots:
    """Every slot found in one caller turn."""
    card_type, network = extract_card(text)
    return Slots(
        card_type=card_type,
        card_network=network,
        amounts=extract_amounts(text),
        dates=extract_dates(text),
        merchant=extract_merchant(text),
        last_four=extract_last_four(text),
    )


# --- dialogue acts ---------------------------------------------------------------------------
Act = Literal["greeting", "goodbye", "thanks", "human", "affirm", "deny", "query"]

_GREETING_WORDS = frozenset(
    _words(
        "hi hello hey hiya there good morning afternoon evening how are you is this anyone can hear me "
        "yes okay ok oh um uh well i have a question"
    )
)
_BYE = re.compile(
    r"\b(bye|goodbye|that's everything|that is everything|that's all|that's it|all set|nothing else|have a (?:nice|good|great) day)\b"
)
_THANKS = re.compile(r"\b(thank you|thanks|thank|appreciate|helpful|cheers)\b")
_HUMAN = re.compile(
    r"\b(?:speak|talk|put me through|transfer me|connect me|get me)\b.*\b(?:person|human|someone|somebody|agent|"
    r"representative|supervisor|manager|team|department|colleague)\b|\b(?:real person|a human|operator|representative)\b"
    r"|^(?:agent|representative|operator)(?: please)?$|\b(?:a robot|a machine|a bot)\b"
)
_QUESTION_START = frozenset(
    _words("how what when where why which who can could will would do does did is are should")
)
_QUESTION_INSIDE = re.compile(r"\b(?:how|what|when|where|why|can you|could you|can i|do i|will i|should i)\b")
_AFFIRM = frozenset(
    _words("yes yeah yep yup sure okay ok please right correct absolutely definitely great perfect")
)
_DENY = frozenset(_words("no nope nah"))


def dialogue_act(text: str, names: Sequence[str] = ()) -> Act:
    """What a caller turn does in the conversation, before what it is about.

    Args:
        text: one caller turn.
        names: extra words that may appear in a bare greeting (the agent's name).

    ``"no that's everything thank you"`` is a goodbye, ``"yes please open a dispute"``
    an affirmation (with content), ``"i lost my card"`` a query.
    """
    words = normalize(text).split()
    if not words:
        return "query"
    joined = " ".join(words)
    is_question = words[0] in _QUESTION_START or bool(_QUESTION_INSIDE.search(joined))
    if _HUMAN.search(joined):
        return "human"
    if _BYE.search(joined) and not is_question:
        return "goodbye"
    if _THANKS.search(joined) and not is_question:
        return "thanks"
    greeting_words = _GREETING_WORDS | {n.lower() for n in names}
    opens = {"hi", "hello", "hey", "good", "hiya"} & set(words)
    if opens and all(w in greeting_words for w in words):
        return "greeting"
    if words[0] in _DENY or joined.startswith("not really"):
        return "deny"
    if words[0] in _AFFIRM or joined.startswith(("that would be great", "go ahead", "that sounds good")):
        return "affirm"
    return "query"
