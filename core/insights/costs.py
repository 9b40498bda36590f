"""Usage, cost per call and provider health from stored records.

Usage comes from ``usage`` events (written by cloud provider adapters:
``{stage, provider, stt_seconds | tts_chars | llm_input_tokens | llm_output_tokens}``).
A call without them ran on the embedded stack, whose usage is derived from what the
pipeline stored: STT seconds from the recognised audio (utterance timings), TTS
characters from the agent's lines. The embedded reply model reports no tokens.
Cost = usage × a price table (provider → unit prices, USD).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.insights.analytics import CallData, Table, percentile, table
from core.store import EventRecord

USAGE_UNITS = ("stt_seconds", "tts_chars", "llm_input_tokens", "llm_output_tokens")
# Price-table keys and how many usage units each price covers.
PRICE_UNITS: dict[str, tuple[str, float]] = {
    "stt_seconds": ("stt_per_min", 60.0),
    "tts_chars": ("tts_per_1k_chars", 1000.0),
    "llm_input_tokens": ("llm_input_per_1m_tokens", 1_000_000.0),
    "llm_output_tokens": ("llm_output_per_1m_tokens", 1_000_000.0),
}
EMBEDDED_PROVIDERS = {"stt": "moonshine", "llm": "embedded", "tts": "piper"}
NO_BREAKERS = "no breaker state (embedded providers)"


@dataclass(frozen=True)
class Usage:
    call_id: str
    stage: str
    provider: str
    unit: str
    amount: float


def usage(data: CallData) -> list[Usage]:
    """Usage per call, stage and provider (recorded, or derived for embedded calls)."""
    recorded = [e for e in data.events if e.type == "usage"]
    out = [
        Usage(e.call_id, str(e.payload.get("stage")), str(e.payload.get("provider")), unit, float(e.payload[unit]))
        for e in recorded
        for unit in USAGE_UNITS
        if e.payload.get(unit) is not None
    ]
    metered = {e.call_id for e in recorded}
    audio_ms: Counter[str] = Counter()
    for t in data.timings:
        audio_ms[t.call_id] += t.audio_ms
    chars: Counter[str] = Counter()
    for s in data.segments:
        if s.speaker == "agent":
            chars[s.call_id] += len(s.text)
    for call in data.calls:
        if call.id in metered:
            continue
        out.append(Usage(call.id, "stt", EMBEDDED_PROVIDERS["stt"], "stt_seconds", audio_ms[call.id] / 1000.0))
        out.append(Usage(call.id, "tts", EMBEDDED_PROVIDERS["tts"], "tts_chars", float(chars[call.id])))
    return out


def unit_price(prices: Mapping[str, Mapping[str, float]], provider: str, unit: str) -> float:
    """Price of one usage unit for ``provider`` (0 when the table does not list it)."""
    key, per = PRICE_UNITS[unit]
    return float(prices.get(provider, {}).get(key, 0.0)) / per


def cost_per_call(
    data: CallData,
    prices: Mapping[str, Mapping[str, float]],
    price_as: Mapping[str, str] | None = None,
) -> Table:
    """Usage and cost (USD) per call.

    Args:
        data: the calls and their records.
        prices: provider → unit prices (see ``PRICE_UNITS`` for the keys).
        price_as: stage → provider whose prices to apply instead of the provider that
            served the call ("what would these calls cost on ...").
    """
    per_call: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys((*USAGE_UNITS, "cost_usd"), 0.0))
    for u in usage(data):
        row = per_call[u.call_id]
        row[u.unit] += u.amount
        provider = (price_as or {}).get(u.stage, u.provider)
        row["cost_usd"] += u.amount * unit_price(prices, provider, u.unit)
    rows = []
    for call in data.calls:
        r = per_call[call.id]
        rows.append((
            call.id, call.started_at, round(r["stt_seconds"], 1), int(r["tts_chars"]),
            int(r["llm_input_tokens"]), int(r["llm_output_tokens"]), round(r["cost_usd"], 5),
        ))
    columns = ("call_id", "started_at", "stt_seconds", "tts_chars", "llm_input_tokens", "llm_output_tokens", "cost_usd")
    return table(columns, rows)


def provider_health(data: CallData) -> Table:
    """Requests, errors and fallbacks per stage and provider.

    From ``provider_call`` events when the provider layer wrote them; otherwise derived
    from the embedded pipeline's turns (a recognised line, a reply, a spoken reply each
    count as one request that succeeded, since the in-process providers do not fail
    over).
    """
    calls = [e for e in data.events if e.type == "provider_call"]
    if calls:
        return _from_provider_calls(calls)
    rows = []
    counts = {
        "stt": len(data.timings),
        "llm": sum(t.reply_first_token_ms is not None for t in data.turns),
        "tts": sum(t.tts_first_audio_ms is not None for t in data.turns),
    }
    for stage, n in counts.items():
        if n:
            rows.append((stage, EMBEDDED_PROVIDERS[stage], n, 0, 0, None, "derived from turns"))
    return table(_HEALTH_COLUMNS, rows)


_HEALTH_COLUMNS = ("stage", "provider", "requests", "errors", "fallbacks", "p50_ms", "source")


def _from_provider_calls(events: Sequence[EventRecord]) -> Table:
    groups: dict[tuple[str, str], list[EventRecord]] = defaultdict(list)
    for e in events:
        groups[(str(e.payload.get("stage")), str(e.payload.get("provider")))].append(e)
    rows = []
    for (stage, provider), evs in sorted(groups.items()):
        ms = [float(e.payload["ms"]) for e in evs if e.payload.get("ms") is not None]
        p50 = percentile(ms, 50)
        rows.append((
            stage, provider, len(evs), sum(not e.payload.get("ok") for e in evs),
            sum(bool(e.payload.get("fallback_to")) for e in evs),
            None if p50 is None else round(p50, 1), "provider calls",
        ))
    return table(_HEALTH_COLUMNS, rows)


def errors_by_kind(data: CallData) -> Table:
    counts = Counter(
        (str(e.payload.get("provider")), str(e.payload.get("kind") or "unknown"))
        for e in data.events
        if e.type == "provider_call" and not e.payload.get("ok")
    )
    return table(("provider", "kind", "errors"), [(*k, n) for k, n in counts.most_common()])


def breaker_table(states: Mapping[str, str] | None) -> Table | None:
    """Circuit breaker state per provider (``name → closed|open|half_open``); None when
    no breaker exists (embedded providers run in-process)."""
    if not states:
        return None
    return table(("provider", "state"), sorted(states.items()))
