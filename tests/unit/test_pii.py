import pytest

from core.pii import Redactor, luhn_ok, redact


@pytest.mark.parametrize(
    "text,expected",
    [
        ("my card number is 4111 1111 1111 1111", "my card number is [CARD]"),
        ("card 4111-1111-1111-1111 please", "card [CARD] please"),
        ("it's four one one one one one one one one one one one one one one one", "it's [CARD]"),
        ("my account number is 12345678", "my account number is [ACCOUNT]"),
        ("account one two three four five six seven eight nine", "account [ACCOUNT]"),
        ("call me on 415-555-0134", "call me on [PHONE]"),
        ("my phone number is four one five five five five oh one three four", "my phone number is [PHONE]"),
        ("my social is 123-45-6789", "my social is [NATIONAL_ID]"),
        ("email me at jane.doe@example.com thanks", "email me at [EMAIL] thanks"),
        ("it's jane dot doe at example dot com", "it's [EMAIL]"),
        ("account double five six seven eight nine one two", "account [ACCOUNT]"),
    ],
)
def test_true_positives(text, expected):
    assert redact(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "it was forty two dollars at a grocery store",
        "the card ending in one two three four",  # last four digits are kept
        "I paid $1,250.00 on March 3 2024",
        "my card 4111 1111 1111 1112 failed",  # fails Luhn and too short for an account? no: 16 digits
        "I'll be there in one or two days",
        "we are open nine to five",
        "the reference is 2024",
        "that's one one one",
    ],
)
def test_false_positives_are_left_alone(text):
    redacted, spans = redact(text)
    if "4111 1111 1111 1112" in text:
        # not a valid card number, but 16 digits is still an account-like identifier
        assert [s.kind for s in spans] == ["ACCOUNT"]
    else:
        assert redacted == text and spans == []


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("5555555555554444")
    assert not luhn_ok("4111111111111112")


def test_redactor_can_be_switched_off():
    assert Redactor(enabled=False)("card 4111 1111 1111 1111") == "card 4111 1111 1111 1111"
    assert Redactor()("card 4111 1111 1111 1111") == "card [CARD]"


def test_partial_hypotheses_mask_numbers_still_being_spoken():
    assert redact("my card number is four one one one one one", partial=True)[0] == "my card number is [DIGITS]"
    assert redact("my card is 41111 1", partial=True)[0] == "my card is [DIGITS]"
    assert redact("it was forty two dollars", partial=True)[0] == "it was forty two dollars"
    assert redact("ending in one two three four", partial=True)[0] == "ending in one two three four"
