"""The OpenAI chat-completions wire format (also vLLM, Ollama, LM Studio, llama.cpp...).

Pure translation: our ChatRequest to the JSON body, SSE chunks to events,
model lists and error bodies to our types. Azure OpenAI reuses most of it
(``azure_openai.py``).
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError, ProviderUnavailable
from .address import AddressError, openai_endpoints
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
    as_int,
    error_text,
    json_message,
    load_chunk,
    stream_error,
    usage_events,
)
from .models import infer_capabilities, infer_group
from .think import ThinkSplitter

# OpenAI's finish reasons are already our words; older servers say "function_call".
_FINISH = {"function_call": "tool_calls", "eos": "stop", "eos_token": "stop", "max_tokens": "length"}


def unavailable(settings: ProviderSettings, exc: AddressError) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"Provider {settings.id!r} cannot be used: {exc}.",
        hint="check the provider's API address (`api_address` in its config)",
        providerId=settings.id,
    )


def error_event(obj: Any, provider_id: str) -> ProviderError:
    """`data: {"error": {...}}` or `event: error` inside a 200 stream."""
    err = obj.get("error") if isinstance(obj, dict) else None
    word = ""
    if isinstance(err, dict):
        word = str(err.get("type") or err.get("code") or err.get("status") or "")
    return stream_error(provider_id, word, json_message(obj))


def models_url(settings: ProviderSettings, endpoints: Endpoints) -> str:
    if endpoints.models is None:
        raise ProviderUnavailable(
            f"Provider {settings.id!r}: its API address ends in `#` and has no model list "
            "address next to it that we can derive.",
            hint=f"add models by name with `orchard model add {settings.id} MODEL`",
            providerId=settings.id,
        )
    return endpoints.models


class OpenAIAdapter:
    uses_stream_options = True

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    def endpoints(self, model: str | None = None) -> Endpoints:
        try:
            return openai_endpoints(self.settings.api_address)
        except AddressError as exc:
            raise unavailable(self.settings, exc) from None

    def chat_body(self, req: ChatRequest, *, stream_options: bool) -> dict[str, Any]:
        messages = [{"role": "system", "content": req.system}] if req.system else []
        messages += [{"role": m.role, "content": m.content} for m in req.messages]
        body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": True}
        if stream_options:
            body["stream_options"] = {"include_usage": True}
        for name in ("temperature", "top_p", "max_tokens"):
            value = getattr(req, name)
            if value is not None:  # sent only when set: servers' defaults differ
                body[name] = value
        return body

    def build_chat(
        self, req: ChatRequest, *, stream_options: bool = True
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        url = self.endpoints(req.model).chat
        return url, {"Content-Type": "application/json"}, self.chat_body(req, stream_options=stream_options)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    def new_state(self) -> StreamState:
        state = StreamState()
        state.think = ThinkSplitter()
        return state

    def parse_stream(self, event: str, data: str, state: StreamState) -> list[ChatEvent]:
        if data.strip() == "[DONE]":
            state.done = True
            return []
        if not data.strip():
            return []  # keep-alive
        obj = load_chunk(data)
        if event == "error" or (isinstance(obj, dict) and obj.get("error")):
            raise error_event(obj, self.settings.id)
        if not isinstance(obj, dict):
            raise MalformedChunk(f"a stream chunk is not a JSON object: {data[:80]!r}")
        out: list[ChatEvent] = []
        usage = obj.get("usage")
        if isinstance(usage, dict):  # the include_usage chunk (choices: []); last one wins
            state.input_tokens = as_int(usage.get("prompt_tokens"))
            state.output_tokens = as_int(usage.get("completion_tokens"))
        choices = obj.get("choices") or []  # Azure's prompt_filter_results chunk has none
        for choice in choices[:1]:  # we ask for one answer (n=1)
            delta = choice.get("delta") or {}
            # vLLM/DeepSeek say reasoning_content, OpenRouter/Ollama say reasoning.
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                out += state.think.feed(content)
            reason = choice.get("finish_reason")
            if reason:
                state.finished = True
                state.finish_reason = _FINISH.get(reason, reason)
        return out

    def end_stream(self, state: StreamState) -> list[ChatEvent]:
        """Events owed at the end of a complete stream: held-back text, usage, finish."""
        out: list[ChatEvent] = list(state.think.flush()) if state.think else []
        return out + usage_events(state) + [Finish(state.finish_reason)]

    def complete(self, state: StreamState) -> bool:
        # Some servers end without [DONE] after the finish chunk: that answer is whole.
        return state.done or state.finished

    def models_request(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        return models_url(self.settings, self.endpoints(None)), {}

    def parse_models(self, body: Any) -> tuple[list[FetchedModel], str | None]:
        # {"data": [...]} per OpenAI; some servers answer a bare list or {"models": [...]}.
        items = body.get("data", body.get("models")) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise MalformedChunk("the model list is not of the form {\"data\": [...]}")
        models = []
        for item in items:
            if isinstance(item, str):
                item = {"id": item}
            if not isinstance(item, dict):
                continue
            model_id = item.get("id") or item.get("model") or item.get("name")
            if not isinstance(model_id, str) or not model_id:
                continue
            models.append(
                FetchedModel(
                    id=model_id,
                    name=item.get("name") if isinstance(item.get("name"), str) else model_id,
                    group=infer_group(model_id),
                    capabilities=infer_capabilities(model_id),
                    owned_by=item.get("owned_by") if isinstance(item.get("owned_by"), str) else None,
                )
            )
        return models, None

    def parse_error(self, status: int, body: bytes, content_type: str) -> str | None:
        return error_text(body, content_type)
