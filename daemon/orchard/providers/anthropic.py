"""The Anthropic messages wire format: request body, named SSE events, model pages.

Differences from OpenAI that matter here: the system prompt is a top-level
field (not a message), ``max_tokens`` is required, reasoning arrives as
``thinking`` content blocks, usage is split between ``message_start`` (input)
and ``message_delta`` (output), and an ``error`` event can arrive inside a
200 stream (``overloaded_error``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from .address import AddressError, anthropic_endpoints
from .base import (
    ChatEvent,
    ChatRequest,
    Endpoints,
    FetchedModel,
    Finish,
    MalformedChunk,
    ProviderSettings,
    ReasoningDelta,
    StreamState,
    TextDelta,
    as_int,
    error_text,
    json_message,
    load_chunk,
    stream_error,
    usage_events,
)
from .models import infer_capabilities, infer_group
from .openai import models_url, unavailable

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # required by the API; generous for a chat turn

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicAdapter:
    uses_stream_options = False

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    def endpoints(self, model: str | None = None) -> Endpoints:
        try:
            return anthropic_endpoints(self.settings.api_address)
        except AddressError as exc:
            raise unavailable(self.settings, exc) from None

    def build_chat(
        self, req: ChatRequest, *, stream_options: bool = True
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        # Anthropic takes no system messages: they join the top-level system prompt.
        system = [req.system] if req.system else []
        system += [m.content for m in req.messages if m.role == "system"]
        messages = [{"role": m.role, "content": m.content} for m in req.messages if m.role != "system"]
        body: dict[str, Any] = {
            "model": req.model,
            "max_tokens": req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "messages": messages,
            "stream": True,
        }
        if system:
            body["system"] = "\n\n".join(system)
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        return self.endpoints(req.model).chat, headers, body

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key} if key else {}

    def new_state(self) -> StreamState:
        return StreamState()

    def parse_stream(self, event: str, data: str, state: StreamState) -> list[ChatEvent]:
        if not data.strip():
            return []
        obj = load_chunk(data)
        if not isinstance(obj, dict):
            raise MalformedChunk(f"a stream chunk is not a JSON object: {data[:80]!r}")
        kind = obj.get("type") or event
        if kind == "error":
            err = obj.get("error") if isinstance(obj.get("error"), dict) else {}
            raise stream_error(self.settings.id, str(err.get("type", "")), json_message(obj))
        if kind == "message_start":
            usage = (obj.get("message") or {}).get("usage") or {}
            state.input_tokens = as_int(usage.get("input_tokens"))
            state.output_tokens = as_int(usage.get("output_tokens")) or state.output_tokens
        elif kind == "content_block_start":
            block = obj.get("content_block") or {}
            # A block may open with some text already in it.
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(block["text"])]
            if block.get("type") == "thinking" and block.get("thinking"):
                return [ReasoningDelta(block["thinking"])]
        elif kind == "content_block_delta":
            delta = obj.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                return [ReasoningDelta(delta["thinking"])]
            # signature_delta, input_json_delta: not shown in a chat.
        elif kind == "message_delta":
            reason = (obj.get("delta") or {}).get("stop_reason")
            if reason:
                state.finished = True
                state.finish_reason = _FINISH.get(reason, reason)
            usage = obj.get("usage") or {}
            if as_int(usage.get("output_tokens")) is not None:  # cumulative count
                state.output_tokens = usage["output_tokens"]
            if as_int(usage.get("input_tokens")) is not None:
                state.input_tokens = usage["input_tokens"]
        elif kind == "message_stop":
            state.done = True
        return []  # ping, content_block_stop and anything newer

    def complete(self, state: StreamState) -> bool:
        return state.done

    def end_stream(self, state: StreamState) -> list[ChatEvent]:
        return usage_events(state) + [Finish(state.finish_reason)]

    def models_request(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        query = {"limit": 100} | ({"after_id": cursor} if cursor else {})
        url = models_url(self.settings, self.endpoints(None))
        return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}", {
            "anthropic-version": ANTHROPIC_VERSION
        }

    def parse_models(self, body: Any) -> tuple[list[FetchedModel], str | None]:
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise MalformedChunk("the model list is not of the form {\"data\": [...]}")
        models = [
            FetchedModel(
                id=item["id"],
                name=item.get("display_name") or item["id"],
                group=infer_group(item["id"]),
                capabilities=infer_capabilities(item["id"]),
                owned_by="anthropic",
            )
            for item in items
            if isinstance(item, dict) and isinstance(item.get("id"), str)
        ]
        cursor = body.get("last_id") if body.get("has_more") else None
        if body.get("has_more") and not cursor and models:
            cursor = models[-1].id
        return models, cursor if isinstance(cursor, str) else None

    def parse_error(self, status: int, body: bytes, content_type: str) -> str | None:
        return error_text(body, content_type)
