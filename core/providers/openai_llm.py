"""OpenAI (or any OpenAI-compatible endpoint): streamed replies and JSON analysis.

The SDK is imported when a backend is first used, so the offline product runs without
it. ``OPENAI_BASE_URL`` points the SDK at another endpoint (a proxy, a compatible
server, the tests' local one). The SDK's own retries are off: retrying, waiting and
failing over are the resilience wrappers' job (:mod:`core.resilience`).
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
INSTALL_HINT = "the OpenAI adapters need the openai package: pip install 'openai>=3.52,<4'"


def import_openai() -> Any:
    """The ``openai`` module, or an ImportError that says how to install it."""
    try:
        import openai
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return openai


def openai_error(
    provider: str, exc: BaseException, error_type: type[ProviderError] = ProviderError
) -> ProviderError:
    """The vocabulary error for an ``openai`` SDK exception (Retry-After kept).

    Args:
        provider: the adapter's name.
        exc: what the SDK raised.
        error_type: the class to raise (a subclass that is also a stage error).
    """
    openai = import_openai()
    if isinstance(exc, ProviderError) and type(exc) is error_type:
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return error_type(provider, ErrorKind.TIMEOUT, str(exc))
    if isinstance(exc, openai.APIConnectionError):
        return error_type(provider, ErrorKind.CONNECTION, f"{exc}: {exc.__cause__ or ''}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = json.dumps(exc.body) if exc.body is not None else str(exc)
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
        return error_type(
            provider, kind_from_status(status, body), str(exc.message), retry_after_s=retry_after, status=status
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return error_type(provider, ErrorKind.MALFORMED, str(exc))
    translated = transport_error(provider, exc)
    if translated is not None:
        return error_type(provider, translated.kind, str(exc), retry_after_s=translated.retry_after_s)
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        return error_type(provider, ErrorKind.SERVER, str(exc))
    return error_type(provider, ErrorKind.MALFORMED, f"{type(exc).__name__}: {exc}")


class OpenAIClients:
    """Lazily built SDK clients: one sync, one async per event loop (a call has its own loop).

    Args:
        api_key: ``OPENAI_API_KEY``.
        base_url: ``OPENAI_BASE_URL`` or None for the SDK default.
        timeout_s: a request's read timeout (the stage budget).
    """

    def __init__(self, api_key: str, base_url: str | None, timeout_s: float):
        import_openai()  # here, not inside a turn's latency budget
        self._kwargs: dict[str, Any] = {"api_key": api_key, "max_retries": 0}
        if base_url:
            self._kwargs["base_url"] = base_url
        self.timeout_s = timeout_s
        self._sync: Any = None
        self._async: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def sync(self) -> Any:
        if self._sync is None:
            self._sync = import_openai().OpenAI(timeout=self.timeout_s, **self._kwargs)
        return self._sync

    def aio(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:
            openai = import_openai()
            # A plain pooled client: the SDK's default one schedules its own close on
            # whatever loop runs when it is collected, which fails once the call's loop
            # has closed (each call has its own loop).
            self._async = openai.AsyncOpenAI(
                timeout=self.timeout_s, http_client=openai.DefaultAsyncHttpxClient(), **self._kwargs
            )
            self._loop = loop
        return self._async


class OpenAIBackend:
    """:class:`~core.providers.llm.LLMBackend` over the Chat Completions API.

    Args:
        api_key: ``OPENAI_API_KEY``.
        model: chat model (``VC_OPENAI_MODEL``).
        base_url: ``OPENAI_BASE_URL``, None for the SDK default.
        timeout_s: a request's read timeout.
    """

    name = "openai"

    def __init__(self, api_key: str, model: str, base_url: str | None = None, timeout_s: float = 10.0):
        self.model = model
        self.clients = OpenAIClients(api_key, base_url, timeout_s)

    async def stream_text(self, system: str, messages: list[Message]) -> AsyncIterator[str]:
        stream: Any = None
        try:
            stream = await self.clients.aio().chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, *messages],
                stream=True,
                stream_options={"include_usage": True},
                max_completion_tokens=MAX_REPLY_TOKENS,
                temperature=REPLY_TEMPERATURE,
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    report_usage(
                        llm_input_tokens=chunk.usage.prompt_tokens, llm_output_tokens=chunk.usage.completion_tokens
                    )
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        yield choice.delta.content
        except Exception as exc:
            raise openai_error(self.name, exc) from exc
        finally:
            if stream is not None:
                await stream.close()

    def complete_json(self, system: str, user: str, schema_name: str, schema: dict[str, Any]) -> Any:
        try:
            response = self.clients.sync().chat.completions.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": schema, "strict": True},
                },
                temperature=JSON_TEMPERATURE,
            )
        except Exception as exc:
            raise openai_error(self.name, exc) from exc
        if response.usage is not None:
            report_usage(
                llm_input_tokens=response.usage.prompt_tokens, llm_output_tokens=response.usage.completion_tokens
            )
        content = response.choices[0].message.content if response.choices else None
        try:
            return json.loads(content or "")
        except json.JSONDecodeError as exc:
            raise malformed(self.name, f"answer is not JSON: {(content or '')[:80]!r}") from exc

    def probe(self, timeout_s: float) -> str:
        try:
            models = self.clients.sync().with_options(timeout=timeout_s).models.list()
            count = sum(1 for _ in models.data)
        except Exception as exc:
            raise openai_error(self.name, exc) from exc
        return f"{count} models available"
