"""The provider layer's data types and the one interface every provider type implements.

Everything here is plain data (msgspec Structs, so the daemon can encode them
as they are) plus the :class:`Adapter` protocol: the pure translation between
our requests/events and one provider type's wire format. I/O lives in
``http.py`` and ``client.py``; adapters never touch a socket.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol, Union

import msgspec

from ..errors import ProviderError

ProviderType = Literal["openai", "anthropic", "gemini", "azure-openai"]
PROVIDER_TYPES: tuple[str, ...] = ("openai", "anthropic", "gemini", "azure-openai")


class ProviderSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the layer needs about one provider, resolved from the config by the caller.

    ``api_keys`` holds the raw values from the config: literal keys,
    ``env:NAME`` or ``cmd:prog arg ...``; an empty tuple or ``("",)`` means
    no key (normal for local servers: no auth header is sent).
    """

    id: str
    type: ProviderType
    api_address: str = ""
    api_keys: tuple[str, ...] = ()
    api_version: str | None = None
    headers: dict[str, str] = {}
    timeout: float = 60.0  # idle: reset on every chunk received
    connect_timeout: float = 10.0
    proxy: str | None = None

    def __repr__(self) -> str:
        # Keys and extra header values (often `Authorization: ...`) must never
        # reach a log line or a traceback through a repr.
        return (
            f"ProviderSettings(id={self.id!r}, type={self.type!r}, "
            f"api_address={self.api_address!r}, api_keys=<{len(self.api_keys)}>, "
            f"api_version={self.api_version!r}, headers={sorted(self.headers)!r}, "
            f"timeout={self.timeout!r}, connect_timeout={self.connect_timeout!r}, "
            f"proxy={'set' if self.proxy else None!r})"
        )

    __str__ = __repr__


class Message(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One chat turn to send; parameters left as None are not sent at all."""

    model: str
    messages: list[Message]
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


# --- stream events (tagged, so a union of them decodes with one decoder) ---


class TextDelta(msgspec.Struct, frozen=True, tag="text", tag_field="type"):
    """A piece of the answer."""

    text: str


class ReasoningDelta(msgspec.Struct, frozen=True, tag="reasoning", tag_field="type"):
    """A piece of the model's reasoning, shown apart from the answer."""

    text: str


class Usage(msgspec.Struct, frozen=True, tag="usage", tag_field="type"):
    """Token counts as the provider reported them; only sent when it reported any."""

    input_tokens: int | None
    output_tokens: int | None


class Finish(msgspec.Struct, frozen=True, tag="finish", tag_field="type"):
    """The last event of a complete answer.

    ``reason`` is normalised to "stop", "length", "content_filter" or
    "tool_calls" when the provider's word maps to one, else kept raw.
    """

    reason: str | None


ChatEvent = Union[TextDelta, ReasoningDelta, Usage, Finish]


class FetchedModel(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    group: str
    capabilities: list[str]
    owned_by: str | None = None


class Endpoints(msgspec.Struct, frozen=True):
    """The exact URLs that will be called (no secrets; Azure's include ?api-version=)."""

    chat: str
    models: str | None


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    message: str
    hint: str | None = None
    status: int | None = None
    url: str | None = None
    provider_message: str | None = None
    retry_after: float | None = None

    @classmethod
    def from_error(cls, exc: Any) -> "ErrorInfo":
        """From an OrchardError (anything with kind/message/hint/data)."""
        data = getattr(exc, "data", {}) or {}
        return cls(
            kind=getattr(exc, "kind", "error"),
            message=getattr(exc, "message", str(exc)),
            hint=getattr(exc, "hint", None),
            status=data.get("status"),
            url=data.get("url"),
            provider_message=data.get("providerMessage"),
            retry_after=data.get("retryAfter"),
        )


class KeyCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The Check result for one API key. ``index`` is its position in the list checked."""

    index: int
    preview: str
    ok: bool
    latency_ms: int | None = None
    error: ErrorInfo | None = None


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """The Check button's answer: ``ok`` when at least one key works."""

    ok: bool
    latency_ms: int | None
    model: str | None
    keys: list[KeyCheck]
    error: ErrorInfo | None = None


class StreamState:
    """Mutable per-stream state an adapter's ``parse_stream`` keeps between events."""

    def __init__(self) -> None:
        self.done = False  # the provider's end marker ([DONE], message_stop) was seen
        self.finish_reason: str | None = None
        self.finished = False  # a finish reason was seen (it may itself be None-ish)
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.events_seen = 0
        self.think: Any = None  # a ThinkSplitter, for types that need one


class Adapter(Protocol):
    """One provider type's wire format. Constructed with ProviderSettings; pure."""

    settings: ProviderSettings
    #: OpenAI-style servers take `stream_options`; some reject it (retried without).
    uses_stream_options: bool

    def endpoints(self, model: str | None) -> Endpoints: ...

    def build_chat(
        self, req: ChatRequest, *, stream_options: bool = True
    ) -> tuple[str, dict[str, str], dict[str, Any]]: ...

    def auth_headers(self, key: str) -> dict[str, str]: ...

    def new_state(self) -> StreamState: ...

    def parse_stream(self, event: str, data: str, state: StreamState) -> list[ChatEvent]:
        """Events for one SSE event; raises ProviderError for an error event, MalformedChunk for junk."""
        ...

    def complete(self, state: StreamState) -> bool:
        """Whether the stream so far is a whole answer (else it "ended early")."""
        ...

    def end_stream(self, state: StreamState) -> list[ChatEvent]:
        """Events owed at the end of a complete stream: held-back text, Usage, Finish."""
        ...

    def models_request(self, cursor: str | None) -> tuple[str, dict[str, str]]: ...

    def parse_models(self, body: Any) -> tuple[list[FetchedModel], str | None]: ...

    def parse_error(self, status: int, body: bytes, content_type: str) -> str | None: ...


# --- helpers shared by the adapters (pure) ---


class MalformedChunk(ValueError):
    """A stream chunk that is not the JSON the provider type promises."""


def load_chunk(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise MalformedChunk(f"a stream chunk is not valid JSON: {data[:80]!r}") from exc


def usage_events(state: StreamState) -> list[ChatEvent]:
    """A Usage event only when the provider reported something (else the caller shows null)."""
    if state.input_tokens is None and state.output_tokens is None:
        return []
    return [Usage(input_tokens=state.input_tokens, output_tokens=state.output_tokens)]


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def error_text(body: bytes, content_type: str) -> str | None:
    """The provider's own words from an error body, whatever the JSON shape.

    Knows the shapes of OpenAI (`{"error": {"message"}}`), Anthropic
    (`{"type": "error", "error": {...}}`), Gemini (`{"error": {"message",
    "status"}}`, sometimes inside a list), FastAPI (`{"detail": ...}`, used by
    vLLM and LiteLLM) and plain strings; HTML pages give their <title>.
    """
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        if "html" in content_type.lower() or text[:15].lower().startswith(("<!doctype", "<html")):
            lower = text.lower()
            start, end = lower.find("<title>"), lower.find("</title>")
            if 0 <= start < end:
                return " ".join(text[start + 7 : end].split())[:200] or None
            return None
        return text[:300]
    return json_message(obj)


def json_message(obj: Any) -> str | None:
    if isinstance(obj, list) and obj:
        return json_message(obj[0])
    if isinstance(obj, str):
        return obj[:500] or None
    if not isinstance(obj, dict):
        return None
    err = obj.get("error")
    if isinstance(err, dict):
        msg = err.get("message") or err.get("msg")
        code = err.get("status") or err.get("code") or err.get("type")
        if isinstance(msg, str) and msg:
            return msg[:500]
        return str(code)[:200] if code else None
    if isinstance(err, str) and err:
        return err[:500]
    detail = obj.get("detail")
    if isinstance(detail, list):  # FastAPI/pydantic validation errors
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}".strip(": "))
        return "; ".join(parts)[:500] or None
    if isinstance(detail, str) and detail:
        return detail[:500]
    msg = obj.get("message")
    return msg[:500] if isinstance(msg, str) and msg else None


def stream_error(provider_id: str, word: str, text: str | None) -> ProviderError:
    """An error event inside a 200 stream, classed by the provider's error type/code word."""
    word = word.lower()
    kind = "server_error"
    if "rate" in word or "429" in word or "resource_exhausted" in word:
        kind = "rate_limited"
    elif "auth" in word or "permission" in word or word in ("401", "403"):
        kind = "bad_key"
    elif "invalid_request" in word or word in ("400", "invalid_argument"):
        kind = "bad_request"
    text = text or word or "an unspecified error"
    return ProviderError(
        kind,
        f"Provider {provider_id!r} reported an error in the middle of its answer: {text}",
        hint="this is the provider's own failure; try again, or another model or key",
        providerMessage=text,
    )
