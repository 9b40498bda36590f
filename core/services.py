"""Process-wide services, built once from settings: store, pack, STT engine, sessions.

The app layer caches one :class:`Services` per process (``st.cache_resource``); tests
build their own with fakes.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.config import Settings
from core.conversation.embedded import EmbeddedResponder
from core.conversation.reply import Conversation, Responder
from core.conversation.voice_agent import AgentConfig, AudioOut, VoiceAgent
from core.copilot.disposition import DispositionClassifier, Taxonomy
from core.copilot.intent import IntentClassifier
from core.copilot.live import CallCopilot, IntentModel, SentimentModel
from core.copilot.wrapup import WrapUp, propose_wrapup, stored_proposal
from core.kb import KBSearch, MirroredIndex
from core.kb.admin import KnowledgeBase, as_article, seed_from_pack
from core.kb.hybrid import HybridSearch
from core.kb.lexical import LexicalIndex
from core.kb.pack import Pack, load_pack
from core.ops.background import BackgroundModel
from core.ops.observability import init_error_reporting
from core.pipeline.reaper import Reaper, reap_dead_calls
from core.pipeline.recording import recorder_factory
from core.pipeline.session import STALE_CALL_AFTER_S, VoiceSession
from core.pipeline.session_loop import SessionLoop
from core.pipeline.vad import Endpointer, make_endpointer
from core.privacy.pii import Redactor
from core.providers.speech import build_speech, build_tts, check_voice
from core.resilience import ChainStatus
from core.resilience.observe import with_call_events
from core.speech.stt import STTEngine
from core.speech.tts import TTSEngine
from core.store import Store

log = logging.getLogger(__name__)
WRAPUP_MODEL_WAIT_S = 10.0  # past this, a wrap-up is proposed by the lexical method


def open_store(settings: Settings) -> Store:
    """The configured store: SQLite by default, Postgres (or Supabase) with DATABASE_URL."""
    if settings.store_provider == "sqlite":
        from core.store.sqlite import SQLiteStore

        return SQLiteStore(settings.db_path)
    if settings.store_provider == "postgres":
        from core.store.postgres import PostgresStore

        return PostgresStore(settings.database_url or "")
    raise NotImplementedError(f"store provider {settings.store_provider!r} is not available yet")


class _CallRef:
    """The call id of a session, read when an event is written (the id exists once it starts)."""

    def __init__(self, session: VoiceSession | None = None):
        self.session = session

    def get(self) -> str | None:
        return self.session.call_id if self.session is not None else None


@dataclass
class Services:
    settings: Settings
    store: Store
    pack: Pack
    stt: STTEngine
    endpointer_factory: Callable[[], Endpointer]
    kb: HybridSearch  # what the copilot surfaces and the KB search box uses
    reply_kb: KBSearch  # the spoken agent's retrieval (its answer thresholds are BM25's)
    knowledge: KnowledgeBase  # the editable KB behind both (Knowledge page)
    sessions: dict[str, VoiceSession] = field(default_factory=dict)
    agents: dict[str, VoiceAgent] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tts: TTSEngine | None = None
    _intent: BackgroundModel | None = None
    _semantic: BackgroundModel | None = None
    _disposition: BackgroundModel | None = None
    _sentiment: SentimentModel | None = None
    _status_responder: Any = None
    _session_loop: SessionLoop | None = None  # transcription-only calls (new_session)

    @property
    def tts(self) -> TTSEngine:
        """The speech synthesiser, loaded on first use."""
        if self._tts is None:
            with self._lock:
                if self._tts is None:
                    self._tts = build_tts(self.settings, self.pack)
        return self._tts

    def new_copilot(self, call_id: str) -> CallCopilot:
        """Copilot state for one call (intent and sentiment models when available)."""
        self.start_semantic_search()
        self.disposition_model()  # ready by the time the call ends
        # The chosen LLM classifies intents when there is one (the embedded model otherwise).
        return CallCopilot(call_id, self.store, self.kb, self._analyst(call_id), self.sentiment_model())

    def _analyst(self, call_id: str) -> Any:
        """Intent, disposition and summary for one call: the chosen LLM's chain down to the
        embedded models, its provider calls recorded as the call's events (the embedded
        analyst alone when no LLM is chosen)."""
        from core.providers.registry import build_analyst

        return with_call_events(build_analyst(self.settings, self.pack, self.intent_model), self.store,
                                lambda: call_id)

    def warm_up(self, load_embeddings: bool = True) -> None:
        """Get the models ready before the first call instead of during it.

        Loading the sentence model (importing torch) is seconds of pure-Python work that
        holds the interpreter lock; done while a call streams audio in this process, it
        starves the call (stalled agent audio, late endpointing). So it happens here, on
        the caller's thread, and only the lighter builds (intent training, KB and label
        encoding) go to background threads.

        Args:
            load_embeddings: load the sentence model now (skip in tests that do not need it).
        """
        from core.language import embeddings
        if load_embeddings and embeddings.available():
            try:
                embeddings.get_embedder().embed(["warm up"])
            except embeddings.EmbeddingsUnavailable as exc:
                log.warning("running without sentence embeddings: %s", exc)
        self.intent_model()
        self.start_semantic_search()
        self.disposition_model()
        # Everything loaded so far lives as long as the process: keep the collector from
        # walking it again and again (a full pass over torch's objects takes long enough
        # to hold up a call's audio).
        gc.freeze()

    def start_semantic_search(self) -> BackgroundModel:
        """Load the sentence model off the caller's thread and add meaning to KB search.

        Until it is ready (torch import and encoding take seconds) the copilot's search is
        lexical-only; nothing waits for it.
        """
        with self._lock:
            if self._semantic is None:
                self._semantic = BackgroundModel(self._enable_semantic, "semantic-kb")
            return self._semantic

    def _enable_semantic(self) -> HybridSearch | None:
        from core.language import embeddings
        if not embeddings.available():
            log.info("sentence embeddings not installed: KB search stays lexical-only")
            return None
        self.kb.enable_semantic(embeddings.get_embedder())
        return self.kb

    @property
    def taxonomy(self) -> Taxonomy:
        """The pack's dispositions and sub-dispositions."""
        return Taxonomy.from_dispositions(self.pack.dispositions)

    def disposition_model(self) -> BackgroundModel:
        """Zero-shot disposition model (label texts encoded in the background)."""
        with self._lock:
            if self._disposition is None:
                self._disposition = BackgroundModel(self._build_disposition, "disposition")
            return self._disposition

    def _build_disposition(self) -> DispositionClassifier:
        model = DispositionClassifier(self.taxonomy)
        model.prepare()
        return model

    def wrap_up(self, call_id: str, wait_s: float = WRAPUP_MODEL_WAIT_S) -> WrapUp:
        """The call's recorded wrap-up proposal, or a new one (recorded as it is made).

        With an LLM configured, it proposes the disposition and picks the summary's lines
        (falling back to the embedded models if it fails). Otherwise this waits up to
        ``wait_s`` for the sentence model; past that, the lexical method answers, so the
        agent is never left without a proposal.
        """
        existing = stored_proposal(self.store, call_id)
        if existing is not None:
            return existing
        from core.resilience.analysis import FallbackAnalyst

        analyst = self._analyst(call_id)
        if isinstance(analyst, FallbackAnalyst):
            # The chosen LLM proposes and summarises; its chain ends at the embedded models.
            return propose_wrapup(self.store, call_id, analyst, summariser=analyst)
        background = self.disposition_model()
        model = background.model if background.wait(wait_s) else None
        return propose_wrapup(self.store, call_id, model or DispositionClassifier(self.taxonomy, embedder=None))

    def intent_model(self) -> IntentModel:
        """Intent detection trained from the pack; predicts None until it is ready."""
        with self._lock:
            if self._intent is None:
                self._intent = BackgroundModel(self._train_intent_model, "intent")
            return self._intent

    def _train_intent_model(self) -> IntentClassifier:
        encoder = self.settings.intent_encoder
        if encoder is None:
            return IntentClassifier.from_pack(self.pack)
        from core.copilot.intent_tuning import TunedEncoder

        return IntentClassifier.from_pack(self.pack, embedder=TunedEncoder.load(encoder))

    def sentiment_model(self) -> SentimentModel:
        with self._lock:
            if self._sentiment is None:
                from core.copilot.sentiment import SentimentScorer

                self._sentiment = SentimentScorer()
            return self._sentiment

    def new_responder(self) -> Responder:
        """The embedded responder, or a fallback chain from the chosen LLM down to it.

        One per call: an LLM client belongs to the event loop of the call it serves.
        """
        from core.providers.registry import build_chain

        return build_chain(self.settings, "llm", self.embedded_responder(), self.pack, self.kb)  # type: ignore[no-any-return]

    def embedded_responder(self) -> EmbeddedResponder:
        """The offline, KB-grounded responder (the floor of every reply chain)."""
        return EmbeddedResponder(self.knowledge.pack_view(self.pack), self.reply_kb, self.intent_model())

    def provider_status(self) -> list[ChainStatus]:
        """Each stage served by a fallback chain: providers, who serves, breaker states.

        Polled by the call pages: stages on their offline provider alone have no chain,
        so nothing is built for them (the embedded default reports nothing, cheaply).
        """
        from core.providers.registry import chain_names

        engines: list[Any] = []
        if chain_names(self.settings, "stt"):
            engines.append(self.stt)
        if chain_names(self.settings, "tts"):
            engines.append(self.tts)
        if chain_names(self.settings, "llm"):
            if self._status_responder is None:
                self._status_responder = self.new_responder()
            engines.append(self._status_responder)
        return [e.status() for e in engines if hasattr(e, "status")]

    def _session(
        self, source: str, metadata: dict[str, Any] | None, host: SessionLoop | None = None
    ) -> VoiceSession:
        call = _CallRef()
        session = VoiceSession(
            self.store,
            with_call_events(self.stt, self.store, call.get),
            self.endpointer_factory,
            source=source,
            metadata=metadata,
            partial_interval_ms=self.settings.partial_interval_ms,
            redact=Redactor(self.settings.pii_redaction),
            recorder=recorder_factory(self.settings.recordings_dir) if self.settings.record_calls else None,
            host=host,
        )
        call.session = session
        return session

    def _register(self, session: VoiceSession, agent: VoiceAgent | None = None) -> None:
        call_id = session.call_id or ""
        with self._lock:
            self.sessions = {k: s for k, s in self.sessions.items() if s.running}
            self.agents = {k: a for k, a in self.agents.items() if k in self.sessions}
            self.sessions[call_id] = session
            if agent is not None:
                self.agents[call_id] = agent
        # Ended calls are dropped when they end, not when the next call starts: an idle
        # server must not keep the last calls' sessions, agents and audio buffers.
        session.add_done_callback(lambda: self._forget(call_id))

    def _forget(self, call_id: str) -> None:
        with self._lock:
            self.sessions.pop(call_id, None)
            self.agents.pop(call_id, None)

    def agent_config(self, **overrides: Any) -> AgentConfig:
        """The agent's turn-taking settings from configuration (``overrides`` win)."""
        values: dict[str, Any] = {
            "barge_in_min_words": self.settings.barge_in_min_words,
            "max_turns": self.settings.max_conversation_turns,
            "max_conversation_s": self.settings.max_conversation_s,
            "preemptive_reply": self.settings.preemptive_reply,
        }
        return AgentConfig(**{**values, **overrides})

    def new_agent_session(
        self,
        audio_out: AudioOut,
        source: str = "talk",
        metadata: dict[str, Any] | None = None,
        config: AgentConfig | None = None,
    ) -> VoiceSession:
        """A voice session with the spoken agent attached (greets, replies, barge-in)."""
        session = self._session(source, metadata)
        call_id = _CallRef(session).get
        agent = VoiceAgent(
            session,
            with_call_events(self.new_responder(), self.store, call_id),
            with_call_events(self.tts, self.store, call_id),
            audio_out,
            self.store,
            Conversation,
            config or self.agent_config(),
        )
        session.start()
        agent.start()
        self._register(session, agent)
        return session

    def new_session(self, source: str = "browser", metadata: dict[str, Any] | None = None) -> VoiceSession:
        """Create and start a transcription session (no agent); it is registered until
        it ends. These calls share one event loop (:mod:`core.pipeline.session_loop`)."""
        with self._lock:
            if self._session_loop is None:
                self._session_loop = SessionLoop()
        session = self._session(source, metadata, host=self._session_loop)
        session.start()
        self._register(session)
        return session


EMBEDDED = {"stt_provider": "pocketsphinx", "llm_provider": "embedded", "tts_provider": "espeak"}  # the floors


def build_services(settings: Settings, stt: STTEngine | None = None) -> Services:
    """Build everything the product needs; slow parts (LM build) happen here, once.

    Raises:
        NotImplementedError: a provider was chosen whose adapter is not built yet.
    """
    from core.providers.registry import supported

    for stage, embedded in EMBEDDED.items():
        chosen = getattr(settings, stage)
        if chosen != embedded and not supported(stage.removesuffix("_provider"), chosen):
            raise NotImplementedError(
                f"{stage.upper()}={chosen} is not available yet: unset "
                f"VC_{stage.upper()} to use the embedded {embedded}"
            )
    init_error_reporting(settings)  # once per process; off without SENTRY_DSN
    check_voice(settings)
    store = open_store(settings)
    reaped = reap_dead_calls(store, STALE_CALL_AFTER_S)
    if reaped:
        log.warning("marked calls left active by a stopped process as failed", extra={"calls": reaped})
    Reaper(store, STALE_CALL_AFTER_S).start()  # and from now on, whatever page is open
    pack = load_pack(settings.pack_dir)
    seed_from_pack(store, pack)  # once per article id: later pack changes never undo KB edits
    articles = tuple(as_article(r) for r in store.list_articles())
    engine, speech = (stt, None) if stt is not None else build_speech(settings, pack, articles)
    kb = HybridSearch(articles, embedder=None)  # meaning is added in the background
    reply_kb = LexicalIndex(articles)
    services = Services(
        settings=settings,
        store=store,
        pack=pack,
        stt=engine,
        endpointer_factory=lambda: make_endpointer(settings),
        kb=kb,
        reply_kb=reply_kb,
        knowledge=KnowledgeBase(
            store, MirroredIndex(kb, reply_kb), KnowledgeBase.intent_names(pack), speech
        ),
    )
    # What was built here (store, pack, KB index, speech model) lives as long as the
    # process: keep the collector's full passes from walking it. With 200 calls in one
    # process those passes held up every call's audio (lag p95 106 ms → 31 ms).
    gc.freeze()
    return services
