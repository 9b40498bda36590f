"""The offline responder: answers in the KB's own words, streamed word by word.

No model and no network. Each caller turn is classified first
(:func:`~core.copilot.slots.dialogue_act`): greetings, thanks, goodbyes and requests for a
person get fixed social lines. Anything else is searched in the KB with the caller's
earlier turns as context, and the call's topic (an article) is kept unless the caller
clearly asks about something else. The reply is one or two sentences of that article,
as re-voiced for the caller by :func:`core.kb.chunking.spoken_form`, chosen by overlap
with the caller's words, by answer type ("how much" wants an amount, "how long" a time),
by what comes next after a "yes", and never repeating what was already said.

When unsure it asks: two articles scoring close gives "is it about X, or Y?" by title;
a question the KB does not cover gives the persona's handoff line. Nothing is added to
KB sentences except what the caller said ("For the 42 dollar charge, ...") and the
condition of the section they come from ("If you shared nothing, ...").
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from core.conversation.memory import Memory, mark
from core.conversation.reply import Conversation
from core.copilot.live import IntentModel
from core.copilot.slots import dialogue_act, extract_slots, spoken_amount
from core.kb import Chunk, KBSearch, SearchHit
from core.kb.chunking import ESCALATION_HEADING, SpokenSentence, chunk_article, proper_nouns, spoken_sentences
from core.kb.lexical import PLACE_EXPANSION, PLACE_NAMES, analyze
from core.kb.pack import Article, Pack
from core.language.text import normalize

log = logging.getLogger(__name__)

MAX_REPLY_WORDS = 45  # a second sentence is added only while the reply stays this short
MIN_COVERAGE = 0.5  # share of the caller's content words the best article must contain
# A short question (up to this many content words) covered no better than OUT_OF_SCOPE_COVERAGE,
# with a word no article uses ("order a pizza"), is out of scope.
SHORT_QUESTION_WORDS = 3
OUT_OF_SCOPE_COVERAGE = 0.5
MIN_SCORE = 3.0  # search score below which the KB has nothing on the question
AMBIGUITY_RATIO = 0.85  # runner-up article within this share of the best: ask which one
STICKY_RATIO = 0.6  # stay on the call's topic while it scores this share of the best article
SECOND_SENTENCE_RATIO = 0.5  # a second sentence must score this share of the first
HISTORY_OVERLAP_WEIGHT = 0.3  # a word from an earlier caller turn counts this much
HIT_CHUNK_BONUS = 1.5  # sentence is in the passage the search ranked best
NEXT_STEP_BONUS = 1.5  # after "yes": sentences right after what was last said
POLICY_BONUS = 0.8  # sentence states a step, a number, a limit or a rule
ESCALATION_PENALTY = 3.0  # escalation rules are for agents unless asked about
POSITION_PENALTY = 1.0  # per section: earlier sections read first on a new topic
ANSWER_TYPE_BONUS = 5.0  # "how much" meets an amount, "how long"/"when" a time: nearly a filter
EXPANSION_WEIGHT = 0.5  # a place expansion ("abroad" for "philippines") counts this much
# On a new topic, a sentence that only holds under a condition the caller has not stated
# ("If you prefer not to contact the merchant, ...") is a poor first answer.
UNSTATED_CONDITION_PENALTY = 3.0
# The intent model names the article when it is at least this sure (calibrated
# probability; held-out bank questions that it gets right score 0.36 and up).
INTENT_ANSWER_CONFIDENCE = 0.35
SWITCH_COVERAGE = 0.6  # a new topic mid-call must cover this share of the caller's words
HELLO_AGAIN = "Hello! How can I help you today?"
ANYTHING_ELSE = "You're welcome. Is there anything else I can help you with today?"
TAKE_YOUR_TIME = "Sounds good, take your time."
TELL_ME_MORE = "Sure. Could you tell me a little more about what you need help with?"
NOTHING_MORE = "That's everything I have on that. Is there anything else I can help you with today?"

ReplyKind = Literal["answer", "clarify", "handoff", "greeting", "close", "ack", "nothing_more"]
_ASKS_AMOUNT = re.compile(r"\b(?:how much|cost|costs|fee|fees|price|charge for)\b")
_ASKS_TIME = re.compile(r"\b(?:how long|when|how soon|how quickly|what time|by when)\b")
_AMOUNT = re.compile(r"\b(?:dollars?|percent|free|no charge|no cost)\b")
_TIME = re.compile(
    r"\b\d+(?: to \d+)? (?:business )?(?:days?|hours?|minutes?|weeks?|months?)\b|\b\d+(?::\d+)? ?[ap]m\b"
    r"|\b(?:same (?:business )?day|next business day|straight away|right away|immediately|instantly?|within minutes)\b"
)
# A turn that asks for something: only such a turn may move the call to a new topic.
_REQUEST = re.compile(
    r"^(?:how|what|when|where|why|which|can|could|will|would|do|does|is|are|should)\b"
    r"|\b(?:i want|i need|i'd like|i would like|help me|can you|could you|how do|how much|how long)\b"
)
# "okay i'll try it again now": the caller is doing something, not asking for the next step.
_OWN_ACTION = re.compile(r"\b(?:i'll|i will|i'm going to|i am going to|i'm (?:\w+ing))\b")
_LEADING_CONDITION = re.compile(r"^(?:If|When|Unless|Once)\b[^,]*,")
_POLICY = re.compile(r"\d|\b(?:free|costs?|fees?|within|days?|limit|never|cannot|must|only|always|I can)\b")
# "For the 42 dollar <noun>": the noun for an amount, from the stems the caller used.
_AMOUNT_NOUNS = {"charge": "charg bill", "transfer": "transfer send wire", "payment": "payment pay"}
_AMOUNT_NOUNS.update({"purchase": "purchas buy", "fee": "fee", "refund": "refund"})


@dataclass(frozen=True)
class Segment:
    """A piece of a reply.

    Attributes:
        text: what is said.
        answered: key of the KB sentence it says, recorded in memory once fully yielded.
        mentioned: slot value it reuses (``"amount:42.0"``), so it is used only once.
    """

    text: str
    answered: str | None = None
    mentioned: str | None = None


@dataclass(frozen=True)
class ReplyPlan:
    """What the responder will say to the latest caller turn, and why.

    Attributes:
        kind: answer, clarify, handoff, greeting, close, ack or nothing_more.
        segments: the reply, in order.
        article_id: the KB article it is about (becomes the call's topic).
        options: the two articles a clarifying question offers, while still undecided.
    """

    kind: ReplyKind
    segments: tuple[Segment, ...]
    article_id: str | None = None
    options: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)


@dataclass(frozen=True)
class _ArticleText:
    article: Article
    sentences: list[SpokenSentence]
    terms: frozenset[str]  # every stem of title, tags and body (coverage test)
    terms_of: dict[str, frozenset[str]]  # sentence key -> its stems


class EmbeddedResponder:
    """KB-grounded replies with no model: implements :class:`core.conversation.reply.Responder`.

    Args:
        pack: the domain pack (articles and persona).
        search: retrieval over the same articles (e.g. :class:`core.kb.lexical.LexicalIndex`).
        intent: intent model trained on the pack's taxonomy (``predict(text)`` returns
            ``label``, ``confidence`` and ``out_of_scope``, or None while it loads). On a
            new topic its intent's linked article is answered from: it understands
            paraphrases that share few words with the article. Without it (or while it
            loads, or when unsure) the article comes from ``search`` alone.
    """

    def __init__(self, pack: Pack, search: KBSearch, intent: IntentModel | None = None):
        self.pack = pack
        self.search = search
        self.intent = intent
        self._by_intent: dict[str, list[str]] = {}
        for article in pack.articles:
            for name in article.intents:
                self._by_intent.setdefault(name, []).append(article.id)
        self.persona = pack.persona
        self.organisation = re.sub(r"\s*\(.*?\)\s*", " ", pack.name).strip()
        nouns = proper_nouns([a.body for a in pack.articles])
        self._articles: dict[str, _ArticleText] = {}
        for article in pack.articles:
            sentences: list[SpokenSentence] = []
            position = 0
            for index, chunk in enumerate(chunk_article(article)):
                sayable, count = spoken_sentences(chunk, index, position, nouns)
                sentences.extend(sayable)
                position += count
            terms = frozenset(analyze(f"{article.title} {' '.join(article.tags)} {article.body}"))
            terms_of = {x.key: frozenset(analyze(x.text)) for x in sentences}
            self._articles[article.id] = _ArticleText(article, sentences, terms, terms_of)
        df: Counter[str] = Counter()
        for text in self._articles.values():
            for sentence_terms in text.terms_of.values():
                df.update(sentence_terms)
        n = max(1, sum(len(t.sentences) for t in self._articles.values()))
        self._idf = {term: math.log(n / count) for term, count in df.items()}
        self._vocabulary: frozenset[str] = frozenset().union(*(t.terms for t in self._articles.values()))
        self.deltas_produced = 0  # every delta any stream has yielded (for metrics and tests)

    # --- Responder ---------------------------------------------------------------------
    def greeting(self) -> str:
        """The persona's opening line."""
        return self.persona.greeting

    async def stream(self, conversation: Conversation) -> AsyncIterator[str]:
        """The reply to the latest caller turn, one word per delta.

        Memory is updated only for what was yielded: the topic with the first word, a
        KB sentence as "answered" only once its last word has been yielded.
        """
        plan = self.plan(conversation)
        words_total = sum(len(s.text.split()) for s in plan.segments)
        emitted = 0
        for segment in plan.segments:
            for word in segment.text.split():
                emitted += 1
                if emitted == 1:
                    conversation.memory = mark(
                        conversation.memory, topic=plan.article_id, options=plan.options
                    )
                self.deltas_produced += 1
                yield word if emitted == words_total else word + " "
                await asyncio.sleep(0)  # let a cancellation in before the next word
            conversation.memory = mark(
                conversation.memory, answered=segment.answered, mentioned=segment.mentioned
            )

    async def reply_text(self, conversation: Conversation) -> str:
        """The whole reply as one string (tests, batch evaluation)."""
        return "".join([delta async for delta in self.stream(conversation)])

    # --- planning ------------------------------------------------------------------------
    def plan(self, conversation: Conversation) -> ReplyPlan:
        """Decide the reply to the latest caller turn (pure: ``conversation`` is not changed)."""
        text = conversation.last_caller_text
        memory = conversation.memory
        if not text.strip():
            return _say("greeting", self.persona.greeting)
        act = dialogue_act(text, names=[self.persona.name, *self.organisation.split()])
        if act == "greeting":
            return _say("greeting", HELLO_AGAIN if conversation.last_agent_text else self.persona.greeting)
        if act == "goodbye":
            return _say(
                "close", f"You're welcome. Thank you for calling {self.organisation}, and have a great day!"
            )
        if act == "thanks":
            return _say("close", ANYTHING_ELSE)
        if act == "human":
            return _say("handoff", self.persona.handoff, article_id=memory.topic)
        if act == "affirm" and memory.topic and _OWN_ACTION.search(normalize(text)):
            return _say("ack", TAKE_YOUR_TIME, article_id=memory.topic)
        if not memory.topic and not analyze(text):  # "yes", "um okay": nothing to look up yet
            return _say("clarify", TELL_ME_MORE)
        history = conversation.caller_texts()[:-1]
        hits = [h for h in self.search.search(text, k=3, history=history) if h.article_id in self._articles]
        choice = self._choose_article(text, hits, memory, act)
        if isinstance(choice, ReplyPlan):
            return choice
        article_id, still_open = choice
        hit_chunk = next((h.chunk for h in hits if h.article_id == article_id), None)
        plan = self._answer(article_id, hit_chunk, text, history, memory, act)
        return ReplyPlan(plan.kind, plan.segments, plan.article_id, still_open)

    def _choose_article(
        self, text: str, hits: Sequence[SearchHit], memory: Memory, act: str
    ) -> ReplyPlan | tuple[str, tuple[str, ...]]:
        """The article to answer from and the options still open, or a question or handoff instead."""
        words = self._query_terms(text)
        if memory.options:  # "is it about X or Y?" is open
            return self._settle_options(text, hits, memory.options)
        topic = memory.topic if memory.topic in self._articles else None
        if topic:
            return self._maybe_switch(text, topic, hits, words, act), ()
        guided = self._intent_article(text, hits)
        if guided is not None:
            return guided, ()
        if not hits or hits[0].score < MIN_SCORE or not self._covers(words, hits[0].article_id):
            return _say("handoff", f"I'm not able to help with that myself. {self.persona.handoff}")
        if len(hits) > 1 and hits[1].score >= AMBIGUITY_RATIO * hits[0].score:
            options = (hits[0].article_id, hits[1].article_id)
            first, second = (self._spoken_title(a) for a in options)
            return _say(
                "clarify", f"Just so I get this right, is it about {first}, or {second}?", options=options
            )
        return hits[0].article_id, ()

    def _intent_article(self, text: str, hits: Sequence[SearchHit]) -> str | None:
        """The article linked to the caller's intent, when the intent model is sure enough."""
        if self.intent is None:
            return None
        try:
            pred = self.intent.predict(text)
        except Exception:  # the reply must not fail because a model did: search decides
            log.exception("intent prediction failed; answering from search alone")
            return None
        if pred is None or getattr(pred, "out_of_scope", False) or pred.confidence < INTENT_ANSWER_CONFIDENCE:
            return None
        linked = [a for a in self._by_intent.get(str(pred.label), ()) if a in self._articles]
        if not linked:
            return None
        ranked = [h.article_id for h in hits if h.article_id in linked]
        return ranked[0] if ranked else linked[0]

    def _settle_options(
        self, text: str, hits: Sequence[SearchHit], options: tuple[str, ...]
    ) -> tuple[str, tuple[str, ...]]:
        """Pick one of the offered articles, or answer from the likelier one and keep asking.

        The caller may name one ("the second one", a title word), or say something that on
        its own favours one; otherwise the whole call decides. A turn that only gives
        details ("the last four digits are 8130") settles nothing: the question stays open.
        """
        picked = self._pick_option(text, options)
        if picked:
            return picked, ()
        ranked = [h.article_id for h in hits if h.article_id in options]
        likelier = ranked[0] if ranked else options[0]
        if extract_slots(text):
            return likelier, options
        alone = [h for h in self.search.search(text, k=5) if h.article_id in options]
        if alone and (len(alone) == 1 or alone[1].score < AMBIGUITY_RATIO * alone[0].score):
            return alone[0].article_id, ()
        return likelier, ()

    def _maybe_switch(
        self, text: str, topic: str, hits: Sequence[SearchHit], words: set[str], act: str
    ) -> str:
        """Stay on the call's topic unless the caller clearly moved on to another one."""
        asks = bool(_REQUEST.search(normalize(text)))
        if act != "query" or not asks or not hits or hits[0].article_id == topic or extract_slots(text):
            return topic  # "yes please", "it was forty two dollars": answers, not new questions
        best = hits[0]
        topic_score = next((h.score for h in hits if h.article_id == topic), 0.0)
        fresh = self.search.search(text, k=1)  # the new turn alone must point there too
        clear = (
            topic_score < STICKY_RATIO * best.score
            and bool(fresh)
            and fresh[0].article_id == best.article_id
            and fresh[0].score >= MIN_SCORE
            and self._coverage(words, best.article_id) >= SWITCH_COVERAGE
        )
        return best.article_id if clear else topic

    def _pick_option(self, text: str, options: Sequence[str]) -> str | None:
        words = set(normalize(text).split())
        if words & {"first", "former"}:
            return options[0]
        if words & {"second", "latter", "other"} and len(options) > 1:
            return options[1]
        stems = set(analyze(text))
        overlaps = [len(stems & set(analyze(self._articles[o].article.title))) for o in options]
        if max(overlaps, default=0) and overlaps.count(max(overlaps)) == 1:
            return options[overlaps.index(max(overlaps))]
        return None

    def _query_terms(self, text: str) -> set[str]:
        terms = set(analyze(text))
        if set(normalize(text).split()) & PLACE_NAMES:
            terms.update(PLACE_EXPANSION)
        return terms

    def _weight(self, term: str, text: str) -> float:
        """IDF of a term; a place expansion ("abroad" for "philippines") counts half."""
        idf = self._idf.get(term, 0.0)
        return idf * EXPANSION_WEIGHT if term in PLACE_EXPANSION and term not in text else idf

    def _covers(self, words: set[str], article_id: str) -> bool:
        """Enough of the caller's words are in the article, and a short question is not half foreign.

        "i want to order a pizza" matches "order" (checks) but "pizza" is in no article:
        a short, half-covered question with a word the KB never uses is out of scope.
        """
        coverage = self._coverage(words, article_id)
        short = len(words) <= SHORT_QUESTION_WORDS
        foreign = short and any(w not in self._vocabulary for w in words)
        return coverage >= MIN_COVERAGE and not (foreign and coverage <= OUT_OF_SCOPE_COVERAGE)

    def _coverage(self, words: set[str], article_id: str) -> float:
        text = self._articles.get(article_id)
        if not words or text is None:
            return 0.0
        return len(words & text.terms) / len(words)

    def _spoken_title(self, article_id: str) -> str:
        title = self._articles[article_id].article.title
        first = title.split()[0]
        return title if first.isupper() or first == "I" else title[0].lower() + title[1:]

    def _answer(
        self,
        article_id: str,
        hit_chunk: Chunk | None,
        text: str,
        history: Sequence[str],
        memory: Memory,
        act: str,
    ) -> ReplyPlan:
        """One or two unsaid sentences of the article that best fit what the caller said."""
        art = self._articles[article_id]
        words = self._query_terms(text)
        past = set(analyze(" ".join(history))) - words
        hit_prefix = f"{hit_chunk.chunk_id}." if hit_chunk else None
        asks_amount = bool(_ASKS_AMOUNT.search(normalize(text)))
        asks_time = bool(_ASKS_TIME.search(normalize(text)))
        said = [s.position for s in art.sentences if s.key in memory.answered]
        last_said = max(said) if said else -1
        scored: list[tuple[float, SpokenSentence]] = []
        for sentence in art.sentences:
            if sentence.key in memory.answered:
                continue
            terms = art.terms_of[sentence.key]
            score = sum(self._weight(t, text) for t in terms & words)
            score += HISTORY_OVERLAP_WEIGHT * sum(self._idf.get(t, 0.0) for t in terms & past)
            score += HIT_CHUNK_BONUS * bool(hit_prefix and sentence.key.startswith(hit_prefix))
            score += POLICY_BONUS * bool(_POLICY.search(sentence.text))
            score -= ESCALATION_PENALTY * bool(ESCALATION_HEADING.search(sentence.heading))
            if act in ("affirm", "deny") and 0 <= last_said < sentence.position <= last_said + 3:
                score += NEXT_STEP_BONUS
            if asks_amount and _AMOUNT.search(sentence.text) or asks_time and _TIME.search(sentence.text):
                score += ANSWER_TYPE_BONUS
            if not said:
                score -= POSITION_PENALTY * sentence.section
                score -= UNSTATED_CONDITION_PENALTY * self._unstated_condition(sentence, words)
            scored.append((score, sentence))
        if not scored:
            return _say("nothing_more", NOTHING_MORE)
        scored.sort(key=lambda p: (-p[0], p[1].position))
        best_score, best = scored[0]
        chosen = [best]
        for score, sentence in scored[1:] if not best.text.endswith("?") else ():
            fits = len(best.text.split()) + len(sentence.text.split()) <= MAX_REPLY_WORDS
            alternative = sentence.text.startswith("If ") and best.text.startswith("If ")
            if (
                sentence.section == best.section
                and fits
                and not alternative
                and score >= SECOND_SENTENCE_RATIO * best_score
            ):
                if not sentence.text.endswith("?"):  # a question ends the reply, it does not start it
                    chosen.append(sentence)
                break
        chosen.sort(key=lambda s: s.position)
        prefix, mentioned = self._slot_prefix(text, history, memory)
        segments = []
        for i, sentence in enumerate(chosen):
            lead = prefix if i == 0 else ""
            if not lead and sentence.condition and (i == 0 or chosen[0].condition != sentence.condition):
                lead = sentence.condition + ", "
            spoken = sentence.text
            if lead.endswith(", ") and not sentence.keep_case:
                spoken = spoken[0].lower() + spoken[1:]
            segments.append(
                Segment(lead + spoken, answered=sentence.key, mentioned=mentioned if i == 0 else None)
            )
        if act in ("affirm", "deny") and not prefix:
            segments.insert(0, Segment("Okay." if act == "deny" else "Sure."))
        return ReplyPlan("answer", tuple(segments), article_id=article_id)

    @staticmethod
    def _unstated_condition(sentence: SpokenSentence, words: set[str]) -> bool:
        """The sentence holds only under a condition none of whose words the caller said."""
        condition = sentence.condition
        if not condition:
            match = _LEADING_CONDITION.match(sentence.text)
            condition = match.group(0) if match else ""
        return bool(condition) and not (set(analyze(condition)) & words)

    def _slot_prefix(self, text: str, history: Sequence[str], memory: Memory) -> tuple[str, str | None]:
        """Lead-in that reuses what the caller just said, and the memory key it uses up."""
        slots = extract_slots(text)
        if slots.last_four and f"last_four:{slots.last_four}" not in memory.mentioned:
            card = f"{memory.card_type} card" if memory.card_type else "card"
            return (
                f"Thanks, that's the {card} ending in {' '.join(slots.last_four)}. ",
                f"last_four:{slots.last_four}",
            )
        if slots.amounts and f"amount:{slots.amounts[-1]}" not in memory.mentioned:
            stems = set(analyze(" ".join([*history, text])))
            noun = next((n for n, keys in _AMOUNT_NOUNS.items() if stems & set(keys.split())), "amount")
            where = (
                f" at {slots.merchant}"
                if slots.merchant and noun in ("charge", "purchase", "payment")
                else ""
            )
            return (
                f"For the {spoken_amount(slots.amounts[-1])} dollar {noun}{where}, ",
                f"amount:{slots.amounts[-1]}",
            )
        return "", None


def _say(
    kind: ReplyKind, line: str, article_id: str | None = None, options: tuple[str, ...] = ()
) -> ReplyPlan:
    return ReplyPlan(kind, (Segment(line),), article_id=article_id, options=options)
