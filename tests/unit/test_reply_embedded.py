"""Slot memory, spoken rewrites and the offline KB-grounded responder on the bank pack."""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from core.conversation.embedded import EmbeddedResponder, ReplyPlan
from core.conversation.memory import Memory, remember
from core.conversation.reply import Conversation, ReplyError, Responder
from core.copilot.slots import (
    dialogue_act,
    extract_amounts,
    extract_card,
    extract_dates,
    extract_last_four,
    extract_merchant,
    extract_slots,
    parse_number,
    resolve_date,
    spoken_amount,
)
from core.kb import SearchHit
from core.kb.chunking import chunk_article, spoken_form, spoken_sentences
from core.kb.lexical import LexicalIndex, analyze
from core.kb.pack import Pack, load_pack

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "packs" / "bank"
MAX_FIRST_DELTA_MS = 10.0


class CountingSearch:
    """Wraps an index and counts searches (to prove nothing runs ahead of consumption)."""

    def __init__(self, inner: LexicalIndex):
        self.inner = inner
        self.calls = 0

    def search(self, query: str, k: int = 3, history: Sequence[str] = ()) -> list[SearchHit]:
        self.calls += 1
        return self.inner.search(query, k, history)

    def upsert(self, article) -> None:
        self.inner.upsert(article)

    def remove(self, article_id: str) -> None:
        self.inner.remove(article_id)


@pytest.fixture(scope="module")
def pack() -> Pack:
    return load_pack(BANK)


@pytest.fixture(scope="module")
def index(pack: Pack) -> LexicalIndex:
    return LexicalIndex.from_pack(pack)


@pytest.fixture(scope="module")
def responder(pack: Pack, index: LexicalIndex) -> EmbeddedResponder:
    return EmbeddedResponder(pack, index)


@pytest.fixture(scope="module")
def conversations() -> list[dict]:
    return yaml.safe_load((BANK / "eval" / "conversations.yaml").read_text())["conversations"]


def ask(responder: EmbeddedResponder, *caller_turns: str) -> tuple[Conversation, list[str]]:
    """Play caller turns through the responder; returns the conversation and the replies."""
    conversation = Conversation()
    conversation.add("agent", responder.greeting())
    replies = []
    for text in caller_turns:
        conversation.add("caller", text)
        reply = asyncio.run(responder.reply_text(conversation))
        conversation.add("agent", reply)
        replies.append(reply)
    return conversation, replies


def plan_for(responder: EmbeddedResponder, text: str) -> ReplyPlan:
    conversation = Conversation()
    conversation.add("caller", text)
    return responder.plan(conversation)


# --- memory: numbers and slots --------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "amounts"),
    [
        ("it was forty two dollars at a grocery store yesterday", (42.0,)),
        ("$42", (42.0,)),
        ("two hundred and fifty dollars", (250.0,)),
        ("it would be about one thousand two hundred dollars", (1200.0,)),
        ("seven hundred and fifty dollars to my contractor", (750.0,)),
        ("fifteen hundred dollars", (1500.0,)),
        ("a hundred bucks", (100.0,)),
        ("twelve dollars and fifty cents", (12.5,)),
        ("ninety nine cents", (0.99,)),
        ("$1,250.50 then 30 dollars", (1250.5, 30.0)),
        ("two overdraft fees this week", ()),
    ],
)
def test_amounts_spoken_or_typed(text: str, amounts: tuple[float, ...]):
    assert extract_amounts(text) == amounts


def test_parse_number_reads_one_number_and_says_how_far():
    assert parse_number(["one", "two", "three", "four"]) == (1, 1)
    assert parse_number(["forty", "two", "point", "five", "dollars"]) == (42.5, 4)
    assert parse_number(["a", "hundred", "and"]) == (100, 2)
    assert parse_number(["dollars"]) is None


def test_spoken_amount_reads_naturally():
    assert [spoken_amount(v) for v in (42.0, 1200.0, 12.5)] == ["42", "1,200", "12.50"]


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("the last four digits are eight one three zero", "8130"),
        ("it's the one ending in one two three four", "1234"),
        ("card ending 4321", "4321"),
        ("last four are 8130", "8130"),
        ("ends with eighty one thirty", "8130"),
        ("ending in oh five five one", "0551"),
        ("ending in one two", None),
        ("i have four cards", None),
    ],
)
def test_last_four_digits(text: str, digits: str | None):
    assert extract_last_four(text) == digits


def test_card_type_and_network():
    assert extract_card("it's my visa debit card") == ("debit", "visa")
    assert extract_card("my northwind master card credit card") == ("credit", "mastercard")
    assert extract_card("i can use the virtual card") == ("virtual", None)
    assert extract_card("provisional credit on my card") == (None, None)


def test_dates_as_said_and_resolved():
    assert extract_dates("it was yesterday") == ("yesterday",)
    assert extract_dates("last tuesday and then on march third") == ("last tuesday", "march third")
    assert extract_dates("on march 3rd") == ("march three",)
    assert extract_dates("the third of march") == ("the third of march",)
    assert extract_dates("a couple of days ago") == ("a couple of days ago",)
    assert extract_dates("i may one day") == ()
    wednesday = dt.date(2025, 6, 11)
    assert resolve_date("yesterday", wednesday) == dt.date(2025, 6, 10)
    assert resolve_date("last tuesday", wednesday) == dt.date(2025, 6, 10)
    assert resolve_date("friday", wednesday) == dt.date(2025, 6, 6)
    assert resolve_date("march third", wednesday) == dt.date(2025, 3, 3)
    assert resolve_date("december first", wednesday) == dt.date(2024, 12, 1)
    assert resolve_date("a couple of days ago", wednesday) == dt.date(2025, 6, 9)
    assert resolve_date("last week", wednesday) is None


def test_merchant_after_at():
    assert extract_merchant("forty two dollars at a grocery store yesterday") == "a grocery store"
    assert extract_merchant("declined at a furniture store and i have money") == "a furniture store"
    assert extract_merchant("at amazon") == "amazon"
    for text in ("at three pm", "at least twice", "i was at home", "at the moment"):
        assert extract_merchant(text) is None


def test_memory_accumulates_across_turns_and_later_values_win():
    memory = remember(Memory(), "my debit card was charged twice")
    memory = remember(memory, "it was forty two dollars at a grocery store yesterday")
    memory = remember(memory, "and another ten dollars at a cafe")
    assert memory.card_type == "debit" and memory.amounts == (42.0, 10.0) and memory.amount == 10.0
    assert memory.merchant == "a cafe" and memory.date == "yesterday"
    assert remember(memory, "no thanks") is memory
    assert not extract_slots("no thanks") and extract_slots("ending in 1234")


def test_conversation_add_updates_memory_from_caller_turns_only():
    conversation = Conversation()
    conversation.add("agent", "It was forty two dollars, right?")
    conversation.add("caller", "yes forty two dollars")
    assert conversation.memory.amounts == (42.0,)
    assert conversation.caller_texts() == ["yes forty two dollars"]
    assert conversation.last_agent_text.startswith("It was")


@pytest.mark.parametrize(
    ("text", "act"),
    [
        ("hi", "greeting"),
        ("hi is this Northwind Bank", "greeting"),
        ("hi i think my card was charged twice", "query"),
        ("no that's everything thank you", "goodbye"),
        ("okay that's helpful i'll do it in the app thanks bye", "goodbye"),
        ("it went through this time thank you", "thanks"),
        ("thanks but how long will it take", "query"),
        ("thanks and can you also freeze my card", "query"),
        ("okay please put me through to the fraud team", "human"),
        ("I don't want to talk to a robot", "human"),
        ("yes please open a dispute", "affirm"),
        ("no i haven't called the store", "deny"),
    ],
)
def test_dialogue_acts(text: str, act: str):
    assert dialogue_act(text, names=["Nora", "Northwind", "Bank"]) == act


# --- spoken rewrites ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kb", "spoken"),
    [
        (
            "Expedited delivery takes 2 business days and costs $25.",
            "Expedited delivery takes 2 business days and costs 25 dollars.",
        ),
        ("Everyday Checking has a $10 monthly fee.", "Everyday Checking has a 10 dollar monthly fee."),
        ("Verify the caller's identity, then block the card right away.", "I can block the card right away."),
        (
            "Once the card is blocked, order the replacement.",
            "Once the card is blocked, I can order the replacement.",
        ),
        (
            "If the customer prefers not to contact the merchant, open a dispute.",
            "If you prefer not to contact the merchant, I can open a dispute.",
        ),
        (
            "If two charges have posted, ask whether the customer has contacted the merchant.",
            "If two charges have posted, have you contacted the merchant?",
        ),
        ("Tell them they did the right thing by calling.", "You did the right thing by calling."),
        ("Remind the customer to update their card details.", "Please remember to update your card details."),
        (
            "Explain that this is a one-time courtesy and that the next one is later.",
            "This is a one-time courtesy and the next one is later.",
        ),
        (
            "If they tell you the purchase was theirs, you can release the hold.",
            "If you tell me the purchase was yours, I can release the hold.",
        ),
        (
            "Agents can unlock it sooner after identity verification.",
            "We can unlock it sooner after identity verification.",
        ),
        (
            "Block the card and transfer to the fraud team.",
            "I can block the card and transfer you to the fraud team.",
        ),
        (
            "Customers have zero liability for **unauthorized** transactions.",
            "You have zero liability for unauthorized transactions.",
        ),
        ("Open the card screen and look at the decline reason.", None),
        ("If the card is lost, follow the lost card article instead.", None),
        ("Never ask the caller for their PIN.", None),
    ],
)
def test_spoken_form(kb: str, spoken: str | None):
    assert spoken_form(kb) == spoken


def test_sentences_under_a_conditional_heading_carry_the_condition(pack: Pack):
    scam = next(a for a in pack.articles if a.id == "security-phishing-scam")
    chunk = next(c for c in chunk_article(scam) if c.heading.startswith("If the customer shared nothing"))
    sayable, count = spoken_sentences(chunk, 1, 10, frozenset())
    assert count == 3 and sayable[0].position == 10 and sayable[0].condition == "If you shared nothing"
    assert sayable[-1].text == "No further action is needed, and your accounts are safe."


# --- the responder ----------------------------------------------------------------------------
def test_responder_satisfies_the_protocol_and_greets_as_the_persona(responder: EmbeddedResponder, pack: Pack):
    as_protocol: Responder = responder
    assert as_protocol.greeting() == pack.persona.greeting
    assert plan_for(responder, "hi").text == pack.persona.greeting  # the call opens with "hi"
    assert ask(responder, "hello")[1] == ["Hello! How can I help you today?"]  # already greeted
    assert issubclass(ReplyError, RuntimeError) and ReplyError("x", retryable=True).retryable


def test_first_reply_of_each_scripted_call_is_drawn_from_the_expected_article(
    responder: EmbeddedResponder, pack: Pack, conversations: list[dict], capsys: pytest.CaptureFixture
):
    articles = {a.id: a for a in pack.articles}
    outcomes = []
    for conv in conversations:
        expected = articles[conv["article"]]
        plan = plan_for(responder, conv["caller_turns"][0])
        reply = ask(responder, conv["caller_turns"][0])[1][0]
        shared = set(analyze(reply)) & set(analyze(f"{expected.title} {expected.body}"))
        outcomes.append((conv["id"], plan.kind, plan.article_id or ",".join(plan.options)))
        assert plan.kind in ("answer", "clarify"), conv["id"]
        assert conv["article"] in (plan.article_id, *plan.options) or conv["id"] == "transfer_wrong_account"
        assert len(shared) >= 2, (conv["id"], reply)
    with capsys.disabled():
        print("\n[reply] first turns:", "; ".join(f"{c}: {k} {a}" for c, k, a in outcomes))


def test_ambiguous_problem_gets_a_clarifying_question_naming_two_articles(
    responder: EmbeddedResponder, pack: Pack
):
    plan = plan_for(responder, "i have a problem with my card")
    titles = {a.id: a.title.lower() for a in pack.articles}
    assert plan.kind == "clarify" and len(set(plan.options)) == 2
    assert plan.text.endswith("?") and all(titles[o] in plan.text.lower() for o in plan.options)


def test_an_answer_to_the_clarifying_question_picks_that_article(responder: EmbeddedResponder):
    conversation, replies = ask(responder, "i have a problem with my card")
    options = conversation.memory.options
    conversation.add("caller", "the second one")
    assert responder.plan(conversation).article_id == options[1]


def test_nothing_in_the_kb_means_a_handoff(responder: EmbeddedResponder, pack: Pack):
    for text in ("can you book me a flight to paris", "i want to order a pizza"):
        plan = plan_for(responder, text)
        assert plan.kind == "handoff" and pack.persona.handoff in plan.text
    assert plan_for(responder, "can i speak to a real person").text == pack.persona.handoff


def test_a_turn_with_nothing_to_look_up_gets_a_prompt_not_a_handoff(responder: EmbeddedResponder):
    for text in ("yes", "um okay"):
        plan = plan_for(responder, text)
        assert plan.kind == "clarify" and plan.options == () and plan.text.endswith("?")


def test_thanks_and_goodbye_close_politely(responder: EmbeddedResponder):
    _, replies = ask(responder, "i was charged twice for the same purchase", "no that's everything thank you")
    assert "Thank you for calling Northwind Bank" in replies[1]
    assert plan_for(responder, "it went through this time thank you").kind == "close"


def test_duplicate_charge_call_stays_on_topic_uses_memory_and_never_repeats(responder: EmbeddedResponder):
    turns = [
        "hi i think my card was charged twice for the same purchase",
        "it was forty two dollars at a grocery store yesterday",
        "no i haven't called the store and i'd rather you handle it",
        "yes please open a dispute",
        "how long will that take",
    ]
    conversation, replies = ask(responder, *turns)
    assert conversation.memory.topic == "payment-duplicate-charge"
    assert replies[1].startswith("For the 42 dollar charge at a grocery store, ")
    assert replies[3].startswith("Sure. ") and "dispute" in replies[3]
    said = [s for r in replies for s in r.split(". ") if len(s.split()) > 3]
    assert len(said) == len(set(said))  # no KB sentence twice
    assert "days" in replies[4]  # "how long" is answered with a time


def test_follow_ups_stay_on_the_topic_of_every_scripted_call(
    responder: EmbeddedResponder, conversations: list[dict]
):
    for conv in conversations:
        if conv["id"] == "transfer_wrong_account":
            continue  # answered from the rank-1 article, which is wrong (test_kb_lexical.KNOWN_LEXICAL_MISSES)
        conversation, _ = ask(responder, *conv["caller_turns"])
        assert conversation.memory.topic == conv["article"], conv["id"]


def test_an_open_question_survives_a_details_only_turn_and_settles_on_content(responder: EmbeddedResponder):
    conversation, replies = ask(
        responder,
        "hello i lost my wallet on the bus and my debit card was in it",
        "the last four digits are eight one three zero",
    )
    assert replies[1].startswith("Thanks, that's the debit card ending in 8 1 3 0.")
    assert set(conversation.memory.options) == {"card-virtual", "card-lost-stolen"}  # still open
    conversation.add("caller", "no i don't see anything strange on the account just block it please")
    conversation.add("agent", asyncio.run(responder.reply_text(conversation)))
    assert conversation.memory.topic == "card-lost-stolen" and conversation.memory.options == ()


def test_every_answer_sentence_is_a_kb_sentence(
    responder: EmbeddedResponder, pack: Pack, conversations: list[dict]
):
    """Never states policy not in the KB: each sentence that answers is a spoken KB sentence."""
    said_by_kb = {
        s.key: s.text
        for a in pack.articles
        for i, c in enumerate(chunk_article(a))
        for s in spoken_sentences(c, i, 0, frozenset())[0]
    }
    checked = 0
    for conv in conversations:
        conversation = Conversation()
        for text in conv["caller_turns"]:
            conversation.add("caller", text)
            plan = responder.plan(conversation)
            for segment in plan.segments:
                if segment.answered:
                    kb_text = said_by_kb[segment.answered]
                    assert segment.text.lower().endswith(kb_text.lower()), (segment.text, kb_text)
                    checked += 1
            conversation.add("agent", asyncio.run(responder.reply_text(conversation)))
    assert checked >= 20


def test_deltas_join_into_the_reply_and_first_delta_is_fast(
    responder: EmbeddedResponder, conversations: list[dict], capsys: pytest.CaptureFixture
):
    async def first_delta_ms(conversation: Conversation) -> tuple[float, str]:
        start = time.perf_counter()
        stream = responder.stream(conversation)
        first = await anext(stream)
        elapsed = (time.perf_counter() - start) * 1000
        rest = [delta async for delta in stream]
        return elapsed, first + "".join(rest)

    timings = []
    for conv in conversations:
        conversation = Conversation()
        for text in conv["caller_turns"]:
            conversation.add("caller", text)
            expected = responder.plan(conversation).text
            elapsed, joined = asyncio.run(first_delta_ms(conversation))
            assert joined == expected
            conversation.add("agent", joined)
            timings.append(elapsed)
    with capsys.disabled():
        print(
            f"\n[reply] first delta over {len(timings)} turns: median={statistics.median(timings):.2f} ms "
            f"max={max(timings):.2f} ms"
        )
    assert statistics.median(timings) < MAX_FIRST_DELTA_MS


def test_cancelling_after_the_first_delta_stops_all_work(pack: Pack, index: LexicalIndex):
    search = CountingSearch(index)
    responder = EmbeddedResponder(pack, search)
    conversation = Conversation()
    conversation.add("caller", "hi i think my card was charged twice for the same purchase")

    async def consume_one_then_close() -> None:
        stream = responder.stream(conversation)
        assert search.calls == 0  # nothing happens before the first delta is asked for
        first = await anext(stream)
        assert first.strip() and responder.deltas_produced == 1
        await stream.aclose()
        assert stream.ag_frame is None  # the generator is finished
        await asyncio.sleep(0.01)

    asyncio.run(consume_one_then_close())
    assert responder.deltas_produced == 1 and search.calls == 1
    assert conversation.memory.topic == "payment-duplicate-charge"
    assert conversation.memory.answered == frozenset()  # the sentence was cut off, not said


def test_cancelling_the_consuming_task_stops_the_stream(pack: Pack, index: LexicalIndex):
    responder = EmbeddedResponder(pack, index)
    conversation = Conversation()
    conversation.add("caller", "how much does it cost to send money to the philippines")
    got: list[str] = []

    async def main() -> None:
        first = asyncio.Event()

        async def speak() -> None:
            async for delta in responder.stream(conversation):
                got.append(delta)
                first.set()
                await asyncio.sleep(1)  # a slow consumer (speech synthesis)

        task = asyncio.create_task(speak())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert len(got) == 1 and responder.deltas_produced == 1


def test_intent_model_picks_the_article_for_held_out_paraphrases(pack, index, capsys):
    """40 held-out caller questions: the article answered from (or offered) with and
    without the intent model. Measured: 23/40 from search alone, 40/40 with intents."""
    from core.copilot.intent import IntentClassifier

    rows = [
        line.rstrip("\n").split("\t")
        for line in (ROOT / "packs/bank/eval/caller_questions.tsv").read_text().splitlines(True)
        if line.strip() and not line.startswith("#")
    ]

    def right(responder) -> int:
        n = 0
        for question, gold in rows:
            conv = Conversation()
            conv.add("caller", question)
            plan = responder.plan(conv)
            n += bool({plan.article_id, *plan.options} & set(gold.split("|")))
        return n

    alone = right(EmbeddedResponder(pack, index))
    guided = right(EmbeddedResponder(pack, index, IntentClassifier.from_pack(pack)))
    with capsys.disabled():
        print(f"\n[reply] right article on {len(rows)} held-out questions: search {alone}, with intents {guided}")
    assert guided >= 36 and guided > alone


class _Unsure:
    def predict(self, text):
        from types import SimpleNamespace

        return SimpleNamespace(label="card_lost_stolen", confidence=0.2, out_of_scope=False)


def test_an_unsure_or_loading_intent_model_leaves_the_choice_to_search(pack, index):
    conv = Conversation()
    conv.add("caller", "what are your branch opening hours on saturday")
    assert EmbeddedResponder(pack, index, _Unsure()).plan(conv).article_id == "branch-hours"
