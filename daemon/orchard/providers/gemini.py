"""The Gemini (Generative Language API) wire format: contents, SSE chunks, model pages.

Differences that matter: roles are ``user``/``model``, the system prompt is a
``systemInstruction``, parameters live in ``generationConfig``, reasoning
arrives as parts marked ``"thought": true``, usage comes as a running
``usageMetadata`` (the last one wins), and the stream has no end marker: a
chunk with a ``finishReason`` is the end.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from .address import AddressError, gemini_endpoints
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

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "tool_calls",
}


class GeminiAdapter:
    uses_stream_options = False

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    def endpoints(self, model: str | None = None) -> Endpoints:
        try:
            return gemini_endpoints(self.settings.api_address, model)
        except AddressError as exc:
            raise unavailable(self.settings, exc) from None

    def build_chat(
        self, req: ChatRequest, *, stream_options: bool = True
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        system = [req.system] if req.system else []
        system += [m.content for m in req.messages if m.role == "system"]
        contents = [
            {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
            for m in req.messages
            if m.role != "system"
        ]
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        config = {
            name: value
            for name, value in (
                ("temperature", req.temperature),
                ("topP", req.top_p),
                ("maxOutputTokens", req.max_tokens),
            )
            if value is not None
        }
        if config:
            body["generationConfig"] = config
        return self.endpoints(req.model).chat, {"Content-Type": "application/json"}, body

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key} if key else {}

    def new_state(self) -> StreamState:
        return StreamState()

    def parse_stream(self, event: str, data: str, state: StreamState) -> list[ChatEvent]:
        if not data.strip():
            return []
        obj = load_chunk(data)
        if isinstance(obj, list) and len(obj) == 1:
            obj = obj[0]
        if not isinstance(obj, dict):
            raise MalformedChunk(f"a stream chunk is not a JSON object: {data[:80]!r}")
        if isinstance(obj.get("error"), dict):
            err = obj["error"]
            raise stream_error(self.settings.id, str(err.get("status") or err.get("code") or ""), json_message(obj))
        usage = obj.get("usageMetadata")
        if isinstance(usage, dict):
            state.input_tokens = as_int(usage.get("promptTokenCount"))
            output = as_int(usage.get("candidatesTokenCount"))
            # Thinking tokens are billed and generated as output, but counted apart.
            thoughts = as_int(usage.get("thoughtsTokenCount"))
            if thoughts is not None:
                output = (output or 0) + thoughts
            state.output_tokens = output
        out: list[ChatEvent] = []
        for candidate in (obj.get("candidates") or [])[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str) and text:
                    out.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
            reason = candidate.get("finishReason")
            if reason and reason != "FINISH_REASON_UNSPECIFIED":
                state.finished = True
                state.finish_reason = _FINISH.get(reason, reason)
        blocked = (obj.get("promptFeedback") or {}).get("blockReason")
        if blocked and not obj.get("candidates"):  # the prompt itself was refused
            state.finished = True
            state.finish_reason = "content_filter"
        return out

    def complete(self, state: StreamState) -> bool:
        return state.finished

    def end_stream(self, state: StreamState) -> list[ChatEvent]:
        return usage_events(state) + [Finish(state.finish_reason)]

    def models_request(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        query = {"pageSize": 100} | ({"pageToken": cursor} if cursor else {})
        url = models_url(self.settings, self.endpoints(None))
        return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}", {}

    def parse_models(self, body: Any) -> tuple[list[FetchedModel], str | None]:
        items = body.get("models", []) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise MalformedChunk("the model list is not of the form {\"models\": [...]}")
        models = []
        for item in items:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                continue
            model_id = name.removeprefix("models/")
            methods = item.get("supportedGenerationMethods") or []
            if "generateContent" in methods or "streamGenerateContent" in methods:
                caps = [c for c in infer_capabilities(model_id) if c not in ("embedding", "rerank")]
                caps = caps or ["text"]
            elif "embedContent" in methods or "batchEmbedContents" in methods:
                caps = ["embedding"]
            else:
                caps = infer_capabilities(model_id)
            models.append(
                FetchedModel(
                    id=model_id,
                    name=item.get("displayName") or model_id,
                    group=infer_group(model_id),
                    capabilities=caps,
                    owned_by="google",
                )
            )
        token = body.get("nextPageToken")
        return models, token if isinstance(token, str) and token else None

    def parse_error(self, status: int, body: bytes, content_type: str) -> str | None:
        return error_text(body, content_type)
