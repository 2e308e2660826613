"""The HTTP boundary: one pooled httpx client per provider, and httpx's errors turned into ours.

Every failure of a provider request becomes a :class:`ProviderError` here,
once, with a ``kind`` from :data:`orchard.errors.PROVIDER_ERROR_KINDS`, a
message naming the provider and what happened, the HTTP status, the URL
(without its query string), the provider's own message, and a hint a person
can act on. The key that was sent is scrubbed from anything the server said.
"""

from __future__ import annotations

import email.utils
import json
import re
import ssl
import time
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit

import httpx
from httpx_sse import aconnect_sse

from ..errors import ProviderError, ProviderUnavailable
from .address import without_query
from .base import ProviderSettings

ParseError = Callable[[int, bytes, str], "str | None"]

# 404/400 texts that say the model (or Azure deployment) is unknown, not the path.
_UNKNOWN_MODEL = re.compile(
    r"(model|deployment)\W.{0,80}?(not found|does not exist|doesn't exist|not exist|unknown|no such"
    r"|not available|is not supported for)|(unknown|invalid|no such) (model|deployment)"
    r"|model_not_found|deploymentnotfound",
    re.IGNORECASE | re.DOTALL,
)
# Gemini answers a wrong key with 400 INVALID_ARGUMENT "API key not valid" (reason API_KEY_INVALID).
_BAD_KEY = re.compile(r"api[ _-]?key (not valid|is invalid|expired)|api_key_invalid|invalid api[ _-]?key", re.IGNORECASE)


_RETRY_DELAY = re.compile(rb'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')


def make_client(settings: ProviderSettings) -> httpx.AsyncClient:
    """The provider's pooled client: its proxy, extra headers and timeouts, nothing from the environment."""
    try:
        return httpx.AsyncClient(
            headers=settings.headers,
            proxy=settings.proxy or None,
            # Stray HTTP(S)_PROXY variables must not reroute a provider (or a test).
            trust_env=False,
            # read= is per chunk: the idle timeout, reset whenever data arrives.
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.timeout,
                write=settings.timeout,
                pool=settings.connect_timeout,
            ),
            # A redirect is reported, not followed: following it would send the key elsewhere.
            follow_redirects=False,
        )
    except (ValueError, TypeError, httpx.InvalidURL) as exc:
        raise ProviderUnavailable(
            f"Provider {settings.id!r} has a proxy setting that cannot be used.",
            hint="set `proxy` to a URL such as http://127.0.0.1:3128, or remove it",
            providerId=settings.id,
        ) from exc


@dataclass(repr=False)
class Call:
    """One request, described for error messages. `secret` is only ever used to scrub."""

    provider_id: str
    url: str
    model: str | None = None
    secret: str = ""
    key_label: str = ""
    timeout: float = 60.0
    connect_timeout: float = 10.0
    azure: bool = False
    #: the provider's proxy, without credentials (for messages), when it has one
    proxy: str | None = None

    @property
    def where(self) -> str:
        return without_query(self.url)

    @property
    def server(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def scrub(self, text: str | None) -> str | None:
        if not text or not self.secret:
            return text
        if len(self.secret) >= 4:
            return text.replace(self.secret, "[key]")
        # A very short key: only whole words, or every message would be mangled.
        return re.sub(rf"(?<!\w){re.escape(self.secret)}(?!\w)", "[key]", text)

    def error(self, kind: str, what: str, hint: str, **data: Any) -> ProviderError:
        what = self.scrub(what) or what
        data["providerMessage"] = self.scrub(data.get("providerMessage"))
        return ProviderError(kind, f"Provider {self.provider_id!r}: {what}", hint=hint, url=self.where, **data)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def names_unknown_model(message: str | None, model: str | None, status: int) -> bool:
    if not message:
        return False
    if _UNKNOWN_MODEL.search(message):
        return True
    # A 404 that names the model we asked for is about the model, not the path --
    # unless it is quoting the path (Gemini's URL holds the model id).
    if status != 404 or not model or model.lower() not in message.lower():
        return False
    return not re.search(r"(unknown|invalid|no such|not found)\W+(path|url|route|endpoint)|/v\d", message, re.I)


def status_error(
    call: Call,
    status: int,
    message: str | None,
    *,
    retry_after: float | None = None,
    location: str | None = None,
) -> ProviderError:
    """A non-2xx answer, classified (pure: all it needs is passed in)."""
    said = f": {message}" if message else ""
    http = f"HTTP {status}"
    common = {"status": status, "providerMessage": message}
    if status in (401, 403) or (status == 400 and message and _BAD_KEY.search(message)):
        set_key = f"`orchard provider set-key {call.provider_id}`"
        if call.key_label == "(no key)":
            return call.error("bad_key", f"the server wants an API key and none is set ({http}){said}",
                              f"set one with {set_key}", **common)
        if call.key_label.startswith(("env:", "cmd:")):
            hint = f"check the API key that {call.key_label} gives, or set another with {set_key}"
        else:
            hint = f"check the API key, or set a new one with {set_key}"
        label = f" {call.key_label}" if call.key_label not in ("", "…") else ""
        return call.error("bad_key", f"the API key{label} was refused ({http}){said}", hint, **common)
    if status == 429:
        hint = (
            f"rate limited; retry after {retry_after:g} s"
            if retry_after is not None
            else "rate limited; wait a moment, or add another API key to rotate through"
        )
        return call.error("rate_limited", f"too many requests ({http}){said}", hint, retryAfter=retry_after, **common)
    if status in (404, 400, 422) and names_unknown_model(message, call.model, status):
        thing = "deployment" if call.azure else "model"
        return call.error(
            "unknown_model",
            f"the {thing} {call.model!r} is unknown to the server ({http}){said}",
            f"check the {thing} name; the provider's own list is what fetching models shows"
            if not call.azure
            else "check the deployment name in the Azure portal (the model id here is the deployment name)",
            **common,
        )
    if status == 404:
        return call.error(
            "wrong_address",
            f"nothing answers at this address ({http}){said}",
            f"check the API address; the request went to {call.where}",
            **common,
        )
    if 300 <= status < 400:
        to = without_query(location) if location else "another address"
        return call.error(
            "wrong_address",
            f"the server redirects to {to} ({http})",
            f"use the address it redirects to ({to}) as the API address",
            **common,
        )
    if status >= 500:
        return call.error(
            "server_error",
            f"the provider's server failed ({http}){said}",
            "this is the provider's side; try again in a moment",
            **common,
        )
    return call.error(
        "bad_request",
        f"the request was refused ({http}){said}",
        "the provider's message says what it did not accept",
        **common,
    )


async def response_error(response: httpx.Response, call: Call, parse_error: ParseError) -> ProviderError:
    """Read a non-2xx body (small, bounded) and classify it."""
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > 64_000:
            break
    message = parse_error(response.status_code, body, response.headers.get("content-type", ""))
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    if retry_after is None and (delay := _RETRY_DELAY.search(body[:64_000])):
        retry_after = float(delay.group(1))  # Gemini puts it in the body: RetryInfo.retryDelay
    return status_error(
        call,
        response.status_code,
        call.scrub(message),
        retry_after=retry_after,
        location=response.headers.get("location"),
    )


def not_an_api(call: Call, what: str, *, page: bool = False, **data: Any) -> ProviderError:
    answer = "a web page" if page else "something that is not this provider's API"
    return call.error(
        "not_an_api",
        what,
        f"the address answers with {answer}, not an API; it usually needs /v1 or a different "
        f"port (the request went to {call.where})",
        **data,
    )


def ended_early(call: Call) -> ProviderError:
    return call.error(
        "server_error",
        "the stream ended early, before the answer was complete",
        "the server or a proxy between us closed the connection; try again",
    )


def exception_error(exc: Exception, call: Call, *, mid_stream: bool = False) -> ProviderError:
    """An httpx exception as one of our error kinds."""
    if isinstance(exc, (httpx.LocalProtocolError, UnicodeError)):
        # Never quote these: their text holds the header value, i.e. the key.
        return call.error(
            "bad_request",
            "the request could not be sent: a header value has characters HTTP does not allow",
            "check the API key and the provider's extra headers for line breaks, spaces or "
            "non-ASCII characters",
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return call.error(
            "timeout",
            f"no connection to {call.server} within {call.connect_timeout:g} s",
            f"is the server running at {call.server}, and reachable from here (proxy, VPN)?",
        )
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
        return call.error(
            "timeout",
            f"no data from the server for {call.timeout:g} s",
            "the model may be slow or stuck; raise the provider's `timeout` or try again",
        )
    if _is_tls(exc):
        return call.error(
            "tls",
            f"the secure connection to {call.server} failed ({_short(exc)})",
            "check the certificate, or whether the address should be http:// rather than https://",
        )
    if isinstance(exc, httpx.ProxyError):
        return call.error("unreachable", f"the proxy refused the connection ({_short(exc)})",
                          "check the provider's `proxy` setting")
    if isinstance(exc, httpx.ConnectError) and call.proxy and not mid_stream:
        # httpx reports a proxy that refuses as a plain connect error: say which hop failed.
        return call.error(
            "unreachable",
            f"cannot connect through the proxy {call.proxy} to {call.server} ({_short(exc)})",
            f"is the proxy running at {call.proxy}? Check the provider's `proxy` setting",
        )
    if isinstance(exc, (httpx.ConnectError, httpx.UnsupportedProtocol)) and not mid_stream:
        return call.error(
            "unreachable",
            f"cannot connect to {call.server} ({_short(exc)})",
            f"is the server running at {call.server}?",
        )
    if isinstance(exc, httpx.InvalidURL):
        return call.error("wrong_address", f"the address is not a valid URL ({_short(exc)})",
                          "check the API address")
    if mid_stream:
        return ended_early(call)
    if isinstance(exc, httpx.DecodingError):
        return not_an_api(call, "the answer could not be decoded")
    return call.error(
        "server_error",
        f"the server at {call.server} closed the connection without answering ({_short(exc)})",
        f"is {call.server} an HTTP server, with the right port and http:// or https://?",
    )


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "SSL" in text or "certificate" in text.lower()


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200] or type(exc).__name__


def _content_kind(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


@asynccontextmanager
async def open_sse(
    client: httpx.AsyncClient, call: Call, headers: dict[str, str], body: dict[str, Any],
    parse_error: ParseError,
) -> AsyncIterator[AsyncIterator[tuple[str, str]]]:
    """POST and yield an iterator of (event, data), after checking status and content type.

    Errors raised before the body is entered happened before the first byte
    of the answer (the caller may retry those); errors from the iterator
    happened mid-stream. Leaving the block closes the connection: a response
    left half-read is never returned to the pool.
    """
    try:
        async with aconnect_sse(client, "POST", call.url, headers=headers, json=body) as source:
            response = source.response
            if not 200 <= response.status_code < 300:
                raise await response_error(response, call, parse_error)
            kind = _content_kind(response)
            if kind != "text/event-stream":
                raise await _not_a_stream(response, call, parse_error, kind)
            async with aclosing(_events(source, call)) as events:
                yield events
    except (httpx.HTTPError, UnicodeError) as exc:
        raise exception_error(exc, call) from exc


async def _events(source: Any, call: Call) -> AsyncIterator[tuple[str, str]]:
    try:
        async with aclosing(source.aiter_sse()) as events:
            async for sse in events:
                yield sse.event, sse.data
    except httpx.HTTPError as exc:
        raise exception_error(exc, call, mid_stream=True) from exc


async def _not_a_stream(response: httpx.Response, call: Call, parse_error: ParseError, kind: str) -> ProviderError:
    body = (await response.aread())[:64_000]
    if "json" in kind:
        message = call.scrub(parse_error(response.status_code, body, kind))
        # Some proxies answer 200 with an error object instead of a stream.
        if message and b'"error"' in body:
            return call.error(
                "server_error", f"the server answered with an error instead of a stream: {message}",
                "this is the provider's side; try again in a moment", status=response.status_code,
                providerMessage=message,
            )
        return not_an_api(call, "the server answered with JSON where a stream (SSE) was expected",
                          status=response.status_code)
    page = "html" in kind or body.lstrip()[:1] == b"<"
    what = "a web page" if page else (kind or "untyped data")
    return not_an_api(call, f"the server answered with {what} where a stream (SSE) was expected",
                      page=page, status=response.status_code)


async def get_json(client: httpx.AsyncClient, call: Call, headers: dict[str, str], parse_error: ParseError) -> Any:
    """GET a JSON document (a model list page)."""
    try:
        async with client.stream("GET", call.url, headers=headers) as response:
            if not 200 <= response.status_code < 300:
                raise await response_error(response, call, parse_error)
            body = await response.aread()
    except (httpx.HTTPError, UnicodeError) as exc:
        raise exception_error(exc, call) from exc
    kind = _content_kind(response)
    try:
        return json.loads(body)
    except ValueError:
        page = "html" in kind or body.lstrip()[:1] == b"<"
        what = "a web page" if page else "something that is not JSON"
        raise not_an_api(call, f"the server answered with {what} where JSON was expected",
                         page=page, status=response.status_code) from None
