"""The Check probe: does this provider answer, with these keys, for this model?

Like Cherry Studio's Check button, with its gaps filled: an empty key is
checked too (local servers need none; no auth header is sent), every key is
checked in parallel and reported on its own (with its position, so "key 3
failed" names the right key), and a provider with no model yet is checked
with a model-list request instead of a chat.

The probe is the smallest streaming chat (system "test", user "hi",
max_tokens 1 where the model allows it). The first chunk that is not an error
counts as success and the stream is closed at once; each key has 15 s.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import TYPE_CHECKING

from ..errors import OrchardError
from .base import ChatRequest, CheckResult, ErrorInfo, KeyCheck, Message
from .keys import preview
from .models import infer_capabilities

if TYPE_CHECKING:
    from .client import ProviderClient


def probe_request(client: "ProviderClient", model: str) -> ChatRequest:
    # OpenAI's reasoning models refuse max_tokens (they want max_completion_tokens):
    # leave it out there; the stream is closed after one chunk anyway.
    reasoning = client.settings.type in ("openai", "azure-openai") and "reasoning" in infer_capabilities(model)
    return ChatRequest(
        model=model,
        system="test",
        messages=[Message("user", "hi")],
        max_tokens=None if reasoning else 1,
    )


async def run_check(client: "ProviderClient", model: str | None, keys: list[str] | None) -> CheckResult:
    """Check each key (the provider's own, or `keys`, e.g. unsaved ones) in parallel.

    ``ok`` is true when at least one key works; ``latency_ms`` is that of the
    key that succeeded first (the fastest); ``error`` is the first key's
    error when none works. Per-key results are in ``keys``, in the order given.
    """
    values = [v.strip() for v in (keys if keys is not None else client.keys.values) if v and v.strip()] or [""]
    results = await asyncio.gather(*(_check_key(client, i, v, model) for i, v in enumerate(values)))
    good = [r.latency_ms for r in results if r.ok and r.latency_ms is not None]
    ok = any(r.ok for r in results)
    return CheckResult(
        ok=ok,
        latency_ms=min(good) if good else None,
        model=model,
        keys=list(results),
        error=None if ok else results[0].error,
    )


async def _check_key(client: "ProviderClient", index: int, value: str, model: str | None) -> KeyCheck:
    started = time.monotonic()
    try:
        async with asyncio.timeout(client.check_timeout):
            if model:
                stream = client._stream(probe_request(client, model), [value], retries=0, failover=False)
                async with aclosing(stream):
                    await anext(stream)  # the first non-error chunk; leaving closes the connection
            else:
                await client._models_page(None, [value], retries=0, failover=False)
    except TimeoutError:
        error = ErrorInfo(
            kind="timeout",
            message=f"Provider {client.settings.id!r}: no answer within {client.check_timeout:g} s.",
            hint="is the server busy or the model still loading? Check again, or raise the provider's timeout",
            url=_probe_url(client, model),
        )
        return KeyCheck(index=index, preview=preview(value), ok=False, error=error)
    except StopAsyncIteration:  # cannot happen (a stream ends with Finish or an error); be safe
        error = ErrorInfo(kind="server_error", message=f"Provider {client.settings.id!r}: empty answer.")
        return KeyCheck(index=index, preview=preview(value), ok=False, error=error)
    except OrchardError as exc:
        return KeyCheck(index=index, preview=preview(value), ok=False, error=ErrorInfo.from_error(exc))
    latency = int((time.monotonic() - started) * 1000)
    return KeyCheck(index=index, preview=preview(value), ok=True, latency_ms=latency)


def _probe_url(client: "ProviderClient", model: str | None) -> str | None:
    try:
        ends = client.endpoints(model)
    except OrchardError:
        return None
    url = ends.chat if model else ends.models
    return url.split("?", 1)[0] if url else None
