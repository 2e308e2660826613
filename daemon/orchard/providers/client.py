"""ProviderClient: one provider's chat, model list and Check, over one pooled HTTP client.

It ties the pieces together: the adapter for the provider's type (pure
translation), its keys (rotation, lazy resolution, failover), and the HTTP
boundary (``http.py``). The policy for a failed attempt lives in one place,
:meth:`ProviderClient._recover`:

* 401 with an ``env:``/``cmd:`` key: resolve the key again once (it may have rotated);
* 400/422 while ``stream_options`` was sent: try once without it, and
  remember for this client when that was the fix;
* 401, 403 or 429 with another key left: move to the next key;
* 429, 502, 503 or a failed connection: retry with backoff (0.5 s, 1 s),
  honouring Retry-After up to 20 s, at most twice;
* an error event inside a 200 stream before any text, with another key left:
  move to the next key.

Nothing is retried once the answer has begun: text already yielded stays
yielded, and the error that follows is raised as it is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import httpx

from ..errors import ProviderError, ProviderUnavailable
from .anthropic import AnthropicAdapter
from .azure_openai import AzureOpenAIAdapter
from .base import (
    Adapter,
    ChatEvent,
    ChatRequest,
    CheckResult,
    Endpoints,
    FetchedModel,
    MalformedChunk,
    ProviderSettings,
    ReasoningDelta,
    TextDelta,
)
from .gemini import GeminiAdapter
from .http import Call, ended_early, get_json, make_client, not_an_api, open_sse
from .keys import KeyCache, KeyRing, is_reference, preview
from .openai import OpenAIAdapter

log = logging.getLogger("orchard.providers")

_ADAPTERS: dict[str, type] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "azure-openai": AzureOpenAIAdapter,
}


def adapter_for(settings: ProviderSettings) -> Adapter:
    """The pure translation for the provider's type."""
    try:
        return _ADAPTERS[settings.type](settings)
    except KeyError:
        raise ProviderUnavailable(
            f"Provider {settings.id!r} has the type {settings.type!r}, which Orchard does not know.",
            hint=f"use one of: {', '.join(_ADAPTERS)}",
            providerId=settings.id,
        ) from None


@dataclass(repr=False)
class _Try:
    """The state of one request with one key, across its retries."""

    value: str  # the key as configured (literal or reference)
    more_keys: bool
    stream_options: bool
    key: str = ""  # the resolved key
    retries: int = 0
    refreshed: bool = False
    opened: bool = False  # a 2xx stream was open: nothing may be retried after this
    text: bool = False  # answer or reasoning text was yielded
    error_event: bool = False  # the provider sent an error inside its 200 stream


class ProviderClient:
    """Talks to one provider. Cheap to create; call :meth:`aclose` when done with it."""

    retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0)
    max_retries = 2
    retry_after_cap = 20.0  # a longer Retry-After is reported, not waited for
    check_timeout = 15.0
    max_model_pages = 50

    def __init__(self, settings: ProviderSettings, *, key_cache: KeyCache | None = None) -> None:
        self.settings = settings
        self.adapter = adapter_for(settings)
        self.keys = KeyRing(settings.api_keys, key_cache or KeyCache(), settings.id)
        self._http: httpx.AsyncClient | None = None
        # Cleared for good once this server has refused stream_options.
        self._stream_options = bool(self.adapter.uses_stream_options)

    def __repr__(self) -> str:
        return f"ProviderClient({self.settings.id!r}, type={self.settings.type!r})"

    async def __aenter__(self) -> "ProviderClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def endpoints(self, model: str | None = None) -> Endpoints:
        """The exact URLs requests will go to (for a live preview; no secrets)."""
        return self.adapter.endpoints(model)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = make_client(self.settings)
        return self._http

    def _call(self, url: str, model: str | None, t: _Try) -> Call:
        return Call(
            provider_id=self.settings.id,
            url=url,
            model=model,
            secret=t.key,
            key_label=preview(t.value),
            timeout=self.settings.timeout,
            connect_timeout=self.settings.connect_timeout,
            azure=self.settings.type == "azure-openai",
            proxy=_shown(self.settings.proxy),
        )

    # -- chat -------------------------------------------------------------------------

    async def chat(self, req: ChatRequest) -> AsyncIterator[ChatEvent]:
        """Stream one answer: TextDelta / ReasoningDelta events, then Usage (when the
        provider reported it) and Finish. Raises ProviderError / ProviderUnavailable.

        Stopping early (``aclose()`` on the generator, or cancelling the task
        that iterates it) closes the upstream connection at once; use
        ``contextlib.aclosing`` so that happens even when the consumer stops
        between two events.
        """
        async for batch in self._stream(req, self.keys.order(), retries=self.max_retries):
            for event in batch:
                yield event

    async def _stream(
        self, req: ChatRequest, values: list[str], *, retries: int, failover: bool = True
    ) -> AsyncIterator[list[ChatEvent]]:
        """The answer as one batch of events per SSE event (Check needs the first one)."""
        for position, value in enumerate(values):
            more = failover and position + 1 < len(values)
            t = _Try(value=value, more_keys=more, stream_options=self._stream_options)
            if not await self._resolve(t):
                continue
            while True:
                t.opened = t.text = t.error_event = False
                try:
                    async for batch in self._attempt(req, t):
                        yield batch
                    return
                except ProviderError as err:
                    if await self._recover(err, t, retries, tried=position + 1) == "next":
                        break

    async def _attempt(self, req: ChatRequest, t: _Try) -> AsyncIterator[list[ChatEvent]]:
        url, headers, body = self.adapter.build_chat(req, stream_options=t.stream_options)
        headers = {**headers, **self.adapter.auth_headers(t.key)}
        call = self._call(url, req.model, t)
        state = self.adapter.new_state()
        async with open_sse(self._client(), call, headers, body, self.adapter.parse_error) as events:
            t.opened = True
            if not t.stream_options and self._stream_options:
                log.info("provider %s: the server refuses stream_options; not sending it again", self.settings.id)
                self._stream_options = False
            async for event, data in events:
                try:
                    batch = self.adapter.parse_stream(event, data, state)
                except MalformedChunk as exc:
                    if state.events_seen == 0:
                        raise not_an_api(call, f"the stream is not the expected JSON ({exc})") from None
                    raise call.error("server_error", f"the stream broke off into garbage ({exc})",
                                     "try again; if it persists, the server or a proxy is mangling the stream") from None
                except ProviderError as exc:
                    t.error_event = True
                    text = exc.data.get("providerMessage")
                    raise call.error(exc.kind, f"the provider reported an error inside its answer: {text}",
                                     exc.hint or "try again", status=200, providerMessage=text) from None
                state.events_seen += 1
                if any(isinstance(e, (TextDelta, ReasoningDelta)) for e in batch):
                    t.text = True
                yield batch
                if state.done:
                    await _drain(events)
                    break
            if not self.adapter.complete(state):
                raise ended_early(call)
            yield self.adapter.end_stream(state)

    # -- the policy for failures ----------------------------------------------------

    async def _resolve(self, t: _Try, *, refresh: bool = False) -> bool:
        """Resolve the key into `t.key`; False means "skip to the next key"."""
        try:
            key = await self.keys.resolve(t.value, refresh=refresh)
            if not _sendable(key):
                raise ProviderUnavailable(
                    f"Provider {self.settings.id!r}: the API key {preview(t.value)} has characters "
                    "that cannot be sent in a header (a line break, a space or a non-ASCII letter).",
                    hint=f"set the key again with `orchard provider set-key {self.settings.id}`",
                    providerId=self.settings.id,
                )
        except ProviderUnavailable:
            if t.more_keys:
                log.warning("provider %s: key %s is unusable; trying the next", self.settings.id, preview(t.value))
                return False
            raise
        t.key = key
        return True

    async def _recover(self, err: ProviderError, t: _Try, retries: int, *, tried: int) -> str:
        """After a failed attempt: "again" (same key) or "next" (next key); raises otherwise."""
        if t.text or (t.opened and not (t.error_event and t.more_keys)):
            raise _noting(err, tried)
        if t.opened:
            return "next"
        status = err.data.get("status")
        if status == 401 and is_reference(t.value) and not t.refreshed:
            t.refreshed = True  # the key may have been rotated since we read it
            stale = t.key
            if not await self._resolve(t, refresh=True):
                return "next"
            if t.key != stale:
                return "again"
        if t.stream_options and status in (400, 422) and err.kind not in ("unknown_model", "bad_key"):
            t.stream_options = False  # once: the retry's own error is the real one
            return "again"
        if err.kind in ("bad_key", "rate_limited") and t.more_keys:
            log.info("provider %s: key %s failed (%s); trying the next", self.settings.id, preview(t.value), err.kind)
            return "next"
        if t.retries < retries and _retryable(err):
            delay = self._delay(t.retries, err.data.get("retryAfter"))
            if delay is not None:
                t.retries += 1
                log.info("provider %s: %s; retrying in %.1f s", self.settings.id, err.kind, delay)
                await asyncio.sleep(delay)
                return "again"
        raise _noting(err, tried)

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            return retry_after if retry_after <= self.retry_after_cap else None
        return self.retry_delays[min(attempt, len(self.retry_delays) - 1)]

    # -- models ------------------------------------------------------------------------

    async def fetch_models(self) -> list[FetchedModel]:
        """Every model the provider lists, all pages. A failure is raised, never an empty list."""
        models: list[FetchedModel] = []
        seen: set[str] = set()
        cursors: set[str] = set()
        cursor: str | None = None
        for _ in range(self.max_model_pages):
            page, cursor = await self._models_page(cursor, self.keys.order(), retries=self.max_retries)
            models += [m for m in page if m.id not in seen]
            seen.update(m.id for m in page)
            if not cursor or cursor in cursors:  # a server repeating a cursor would loop forever
                break
            cursors.add(cursor)
        return models

    async def _models_page(
        self, cursor: str | None, values: list[str], *, retries: int, failover: bool = True
    ) -> tuple[list[FetchedModel], str | None]:
        url, headers = self.adapter.models_request(cursor)
        for position, value in enumerate(values):
            t = _Try(value=value, more_keys=failover and position + 1 < len(values), stream_options=False)
            if not await self._resolve(t):
                continue
            while True:
                call = self._call(url, None, t)
                try:
                    body = await get_json(
                        self._client(), call, {**headers, **self.adapter.auth_headers(t.key)},
                        self.adapter.parse_error,
                    )
                    try:
                        return self.adapter.parse_models(body)
                    except (MalformedChunk, AttributeError, TypeError) as exc:
                        raise not_an_api(call, f"the model list is not in the expected shape ({exc})") from None
                except ProviderError as err:
                    if await self._recover(err, t, retries, tried=position + 1) == "next":
                        break
        raise AssertionError("unreachable: the last key raises")  # pragma: no cover

    # -- check ---------------------------------------------------------------------------

    async def check(self, model: str | None = None, *, keys: list[str] | None = None) -> CheckResult:
        """Cherry's Check button; see :func:`orchard.providers.check.run_check`."""
        from .check import run_check

        return await run_check(self, model, keys)


def _shown(proxy: str | None) -> str | None:
    """A proxy URL fit for a message: any `user:password@` dropped."""
    if not proxy:
        return None
    parts = urlsplit(proxy)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


async def _drain(events: AsyncIterator[Any], limit: float = 1.0) -> None:
    """Read what follows the end of an answer (the body's last bytes), briefly.

    A response read to its end goes back to the pool, so the next request to
    this provider reuses the connection (no new TCP or TLS handshake); one
    left half-read is closed. A server that keeps talking after the end is
    not waited for beyond ``limit``.
    """
    try:
        async with asyncio.timeout(limit):
            async for _ in events:
                pass
    except (TimeoutError, httpx.HTTPError, ProviderError):
        pass


def _sendable(key: str) -> bool:
    # Visible ASCII only: anything else is refused by httpx with the key quoted in the error.
    return all(33 <= ord(c) < 127 for c in key)


def _retryable(err: ProviderError) -> bool:
    status = err.data.get("status")
    if status is not None:
        return status in (429, 502, 503)
    # No status: the connection failed before any answer (refused, or closed unanswered).
    return err.kind in ("unreachable", "server_error")


def _noting(err: ProviderError, tried: int) -> ProviderError:
    if tried <= 1:
        return err
    return ProviderError(err.kind, f"{err.message} ({tried} API keys were tried)", hint=err.hint, **err.data)
