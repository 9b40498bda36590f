"""Google Gemini through ``google-genai``: streamed replies and JSON analysis.

``genai.Client(api_key=..., http_options=HttpOptions(base_url=...))``; replies stream
from ``client.aio.models.generate_content_stream`` (the async form of
``models.generate_content_stream``: a call's event loop must not block), analysis uses
``models.generate_content`` with ``response_mime_type="application/json"`` and a
``response_schema``. The SDK's retries are off; :mod:`core.resilience` decides.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from core.providers.prompting import MAX_REPLY_TOKENS, Message
from core.providers.transport import malformed, transport_error
from core.resilience.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after
from core.resilience.observe import report_usage

REPLY_TEMPERATURE = 0.3
JSON_TEMPERATURE = 0.0
INSTALL_HINT = "the Gemini adapter needs the google-genai package: pip install 'google-genai>=3.4,<4'"


def import_genai() -> tuple[Any, Any, Any]:
    """``(genai, types, errors)`` from google-genai, or an ImportError saying how to install it."""
    try:
        from google import genai
        from google.genai import errors, types
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return genai, types, errors


def gemini_error(provider: str, exc: BaseException) -> ProviderError:
    """The vocabulary error for a google-genai exception (Retry-After kept)."""
    _, _, errors = import_genai()
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, errors.APIError):
        status = int(exc.code or 0)
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        retry_after = parse_retry_after(headers.get("retry-after") if hasattr(headers, "get") else None)
        body = f"{exc.status} {exc.message} {exc.details}"
        kind = kind_from_status(status, body) if status else ErrorKind.SERVER
        return ProviderError(provider, kind, str(exc.message or exc), retry_after_s=retry_after, status=status or None)
    translated = transport_error(provider, exc)
    if translated is not None:
        return translated
    return ProviderError(provider, ErrorKind.MALFORMED, f"{type(exc).__name__}: {exc}")


def gemini_schema(schema: Any) -> Any:
    """A JSON schema as ``response_schema`` takes it (no ``additionalProperties``)."""
    if isinstance(schema, dict):
        return {k: gemini_schema(v) for k, v in schema.items() if k != "additionalProperties"}
    if isinstance(schema, list):
        return [gemini_schema(v) for v in schema]
    return schema


def gemini_contents(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat messages as Gemini contents: starts with the user, same-role turns merged."""
    contents: list[dict[str, Any]] = []
    for message in messages:
        role = "user" if message["role"] == "user" else "model"
        if not contents and role == "model":
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"][0]["text"] += "\n" + message["content"]
        else:
            contents.append({"role": role, "parts": [{"text": message["content"]}]})
    return contents


class GeminiBackend:
    """:class:`~core.providers.llm.LLMBackend` over the Gemini API.

    Args:
        api_key: ``GEMINI_API_KEY``.
        model: model id (``VC_GEMINI_MODEL``).
        base_url: ``VC_GEMINI_BASE_URL``, None for the SDK default.
        timeout_s: a request's timeout.
    """

    name = "gemini"

    def __init__(self, api_key: str, model: str, base_url: str | None = None, timeout_s: float = 10.0):
        import_genai()  # here, not inside a turn's latency budget (the import takes ~1 s)
        self.model = model
        self._api_key = api_key
        self._base_url = base_url
        self.timeout_s = timeout_s
        self._client: Any = None
        self._aio: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _new_client(self) -> Any:
        genai, types, _ = import_genai()
        options: dict[str, Any] = {
            "timeout": int(self.timeout_s * 1000),
            "retry_options": types.HttpRetryOptions(attempts=1),
        }
        if self._base_url:
            options["base_url"] = self._base_url
        return genai.Client(api_key=self._api_key, http_options=types.HttpOptions(**options))

    def client(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def aio(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._aio is None or self._loop is not loop:
            self._aio = self._new_client().aio
            self._loop = loop
        return self._aio

    async def stream_text(self, system: str, messages: list[Message]) -> AsyncIterator[str]:
        _, types, _ = import_genai()
        usage: Any = None
        try:
            stream = await self.aio().models.generate_content_stream(
                model=self.model,
                contents=gemini_contents(messages),
                config=types.GenerateContentConfig(
                    system_instruction=system, max_output_tokens=MAX_REPLY_TOKENS, temperature=REPLY_TEMPERATURE
                ),
            )
            async for chunk in stream:
                usage = chunk.usage_metadata or usage
                text = chunk.text
                if text:
                    yield text
        except Exception as exc:
            raise gemini_error(self.name, exc) from exc
        if usage is not None:  # cumulative: the last chunk's counts are the request's
            report_usage(
                llm_input_tokens=usage.prompt_token_count or 0, llm_output_tokens=usage.candidates_token_count or 0
            )

    def complete_json(self, system: str, user: str, schema_name: str, schema: dict[str, Any]) -> Any:
        _, types, _ = import_genai()
        try:
            response = self.client().models.generate_content(
                model=self.model,
                contents=user,
                config=types.GenerateContentConfig(
                    system_instruction=system,
                    response_mime_type="application/json",
                    response_schema=gemini_schema(schema),
                    temperature=JSON_TEMPERATURE,
                ),
            )
            text = response.text
        except Exception as exc:
            raise gemini_error(self.name, exc) from exc
        usage = response.usage_metadata
        if usage is not None:
            report_usage(
                llm_input_tokens=usage.prompt_token_count or 0, llm_output_tokens=usage.candidates_token_count or 0
            )
        try:
            return json.loads(text or "")
        except json.JSONDecodeError as exc:
            raise malformed(self.name, f"{schema_name} answer is not JSON: {(text or '')[:80]!r}") from exc

    def probe(self, timeout_s: float) -> str:
        _, types, _ = import_genai()
        try:
            pager = self.client().models.list(
                config=types.ListModelsConfig(page_size=5, http_options=types.HttpOptions(timeout=int(timeout_s * 1000)))
            )
            count = len(pager.page)
        except Exception as exc:
            raise gemini_error(self.name, exc) from exc
        return f"{count} models listed"
