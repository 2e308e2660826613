"""The Anthropic Messages dialect.

Serves ``POST /v1/messages`` (named SSE events exactly in the documented
order, or one message when ``stream`` is not true) and ``GET /v1/models``
paged with ``limit``/``after_id``/``before_id``. Like the real API it wants
``x-api-key`` (when a key is configured), ``anthropic-version`` on every call
and ``max_tokens`` on every message request.
"""

from __future__ import annotations

import re
from typing import Any

from .answer import Answer, plan_answer, text_of
from .common import Dialect, Reply, Request, Route, Stream, json_reply, page_limit, sse_event
from .switches import Switches

__all__ = ["AnthropicDialect"]

_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}

_KNOWN = {
    "claude-sonnet-4-5-20250929": ("Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    "claude-opus-4-1-20250805": ("Claude Opus 4.1", "2025-08-05T00:00:00Z"),
    "claude-3-5-haiku-20241022": ("Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
}

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}
_SIGNATURE = "RmFrZVNpZ25hdHVyZUZyb21PcmNoYXJkRmFrZQ=="


class AnthropicDialect(Dialect):
    type = "anthropic"
    default_models = tuple(_KNOWN)

    def build_routes(self) -> list[Route]:
        return [
            Route("POST", r"/v1/messages", self.messages),
            Route("GET", r"/v1/models", self.list_models),
            Route("GET", r"/v1/models/(?P<model>[^/]+)", self.get_model),
        ]

    def key_of(self, req: Request) -> str | None:
        return req.header("x-api-key") or None

    def error(self, status: int, message: str | None = None, *, type: str | None = None,
              **_: Any) -> Reply:
        kind, default = _ERRORS.get(status, ("api_error", f"HTTP {status}"))
        return json_reply(status, {
            "type": "error", "error": {"type": type or kind, "message": message or default}})

    def key_error(self, req: Request, key: str | None) -> Reply:
        return self.error(401, "x-api-key header is required" if key is None else None)

    def not_found(self, req: Request) -> Reply:
        return self.error(404, f"Not found: {req.method} {req.path}")

    def stream_error_frame(self) -> bytes:
        return sse_event("error", {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}})

    def malformed_frame(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"del\n\n'

    def refuse_key(self, req: Request, sw: Switches) -> Reply | None:
        # Every Anthropic endpoint wants the version header; checked after the
        # key, as the API does, so a missing key still reads as a key problem.
        refused = super().refuse_key(req, sw)
        if refused is None and not req.header("anthropic-version"):
            return self.error(400, "anthropic-version: header is required")
        return refused

    # -- models ------------------------------------------------------------

    def _model(self, model_id: str) -> dict[str, Any]:
        name, created = _KNOWN.get(model_id, (model_id, "2025-01-01T00:00:00Z"))
        return {"type": "model", "id": model_id, "display_name": name, "created_at": created}

    def list_models(self, req: Request, match: re.Match[str], sw: Switches) -> Reply:
        limit = page_limit(req.query.get("limit"), 20, 1000, sw)
        if limit is None:
            return self.error(400, "limit: Input should be a valid integer")
        models = list(sw.models)
        after, before = req.query.get("after_id"), req.query.get("before_id")
        for cursor in (after, before):
            if cursor and cursor not in models:
                return self.error(400, f"Invalid cursor: {cursor}")
        if before:
            end = models.index(before)
            page = models[max(0, end - limit):end]
            has_more = end - limit > 0
        else:
            start = models.index(after) + 1 if after else 0
            page = models[start:start + limit]
            has_more = start + limit < len(models)
        return json_reply(200, {
            "data": [self._model(m) for m in page],
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        })

    def get_model(self, req: Request, match: re.Match[str], sw: Switches) -> Reply:
        model = match["model"]
        if model not in sw.models:
            return self.error(404, f"model: {model}")
        return json_reply(200, self._model(model))

    # -- messages ----------------------------------------------------------

    def messages(self, req: Request, match: re.Match[str], sw: Switches) -> Reply | Stream:
        body = req.body
        if not isinstance(body, dict):
            return self.error(400, "There was an issue with your request body: invalid JSON")
        for name in ("model", "messages", "max_tokens"):
            if name not in body:
                return self.error(400, f"{name}: Field required")
        if not isinstance(body["messages"], list) or not body["messages"]:
            return self.error(400, "messages: at least one message is required")
        model = body["model"]
        if model not in sw.models:
            return self.error(404, f"model: {model}")
        system = body.get("system")
        texts = [text_of(system)] if system else []
        texts += [text_of(m.get("content")) for m in body["messages"] if isinstance(m, dict)]
        last_user = next((text_of(m.get("content")) for m in reversed(body["messages"])
                          if isinstance(m, dict) and m.get("role") == "user"), None)
        answer = plan_answer(texts, last_user, sw, body["max_tokens"])
        message_id = f"msg_fake{req.index}"
        if body.get("stream") is True:
            return self.stream(stream_frames(message_id, model, answer, sw))
        return json_reply(200, message(message_id, model, answer, sw))


def _usage(answer: Answer) -> dict[str, int]:
    return {"input_tokens": answer.prompt_tokens, "output_tokens": answer.completion_tokens}


def message(message_id: str, model: str, answer: Answer, sw: Switches) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.reasoning:
        content.append({"type": "thinking", "thinking": answer.reasoning, "signature": _SIGNATURE})
    content.append({"type": "text", "text": answer.text})
    result: dict[str, Any] = {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": _STOP_REASONS[answer.finish], "stop_sequence": None,
    }
    if sw.usage:
        result["usage"] = _usage(answer)
    return result


def stream_frames(message_id: str, model: str, answer: Answer, sw: Switches) -> list[bytes]:
    start: dict[str, Any] = {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
    }
    if sw.usage:
        start["usage"] = {"input_tokens": answer.prompt_tokens, "output_tokens": 1}
    frames = [sse_event("message_start", {"type": "message_start", "message": start})]

    blocks: list[tuple[str, list[str]]] = []
    if answer.reasoning:
        blocks.append(("thinking", answer.reasoning_pieces))
    blocks.append(("text", answer.text_pieces))
    for index, (kind, parts) in enumerate(blocks):
        empty = {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" \
            else {"type": "text", "text": ""}
        frames.append(sse_event("content_block_start", {
            "type": "content_block_start", "index": index, "content_block": empty}))
        if index == 0:
            frames.append(sse_event("ping", {"type": "ping"}))
        for part in parts:
            delta = {"type": "thinking_delta", "thinking": part} if kind == "thinking" \
                else {"type": "text_delta", "text": part}
            frames.append(sse_event("content_block_delta", {
                "type": "content_block_delta", "index": index, "delta": delta}))
        if kind == "thinking":
            frames.append(sse_event("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "signature_delta", "signature": _SIGNATURE}}))
        frames.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))

    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": _STOP_REASONS[answer.finish], "stop_sequence": None},
    }
    if sw.usage:
        delta["usage"] = {"output_tokens": answer.completion_tokens}
    frames.append(sse_event("message_delta", delta))
    frames.append(sse_event("message_stop", {"type": "message_stop"}))
    return frames
