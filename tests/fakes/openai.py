"""The OpenAI chat-completions dialect, as vLLM, llama.cpp and OpenAI speak it.

Serves ``POST /v1/chat/completions`` (streamed or not), ``GET /v1/models``,
``GET /v1/models/{id}`` and vLLM's ``GET /health``. Azure OpenAI is the same
format behind other paths and error bodies: it subclasses this and overrides
the hooks marked "Azure".
"""

from __future__ import annotations

import re
import time
from typing import Any

from .answer import Answer, plan_answer, text_of
from .common import Dialect, Reply, Request, Route, Stream, json_reply, sse_data
from .switches import Switches

__all__ = ["OpenAIDialect"]

_UNSET: Any = object()

# status -> (type, code, message) as OpenAI answers them.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided. You can find your API key at "
          "https://platform.openai.com/account/api-keys."),
    403: ("permission_error", None, "You are not allowed to use this model."),
    404: ("invalid_request_error", "model_not_found",
          "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None,
          "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}

_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class OpenAIDialect(Dialect):
    type = "openai"
    default_models = ("gpt2", "gpt-4o-mini")

    def build_routes(self) -> list[Route]:
        return [
            Route("GET", r"/health", self.health, needs_key=False),
            Route("GET", r"/v1/models", self.list_models),
            Route("GET", r"/v1/models/(?P<model>.+)", self.get_model),
            Route("POST", r"/v1/chat/completions", self.chat),
        ]

    def key_of(self, req: Request) -> str | None:
        auth = req.header("authorization") or ""
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    # -- errors ------------------------------------------------------------

    def error(self, status: int, message: str | None = None, *, type: str | None = None,
              code: Any = _UNSET, param: str | None = None, **_: Any) -> Reply:
        kind, default_code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None,
                     f"HTTP {status}"))
        body = {
            "message": message or default_message,
            "type": type or kind,
            "param": param,
            "code": default_code if code is _UNSET else code,
        }
        return json_reply(status, {"error": body})

    def key_error(self, req: Request, key: str | None) -> Reply:
        if key is None:
            return self.error(401, _MISSING_KEY, code=None)
        return self.error(401)

    def not_found(self, req: Request) -> Reply:
        return self.error(404, f"Invalid URL ({req.method} {req.path})", code=None)

    def model_missing(self, model: str) -> Reply:
        return self.error(
            404, f"The model `{model}` does not exist or you do not have access to it.")

    def stream_error_frame(self) -> bytes:
        return sse_data({"error": {
            "message": _ERRORS[500][2], "type": "server_error", "param": None, "code": None}})

    def malformed_frame(self) -> bytes:
        return b'data: {"id":"chatcmpl-broken","choices":[{"index":0,"delta":{"content":"oo\n\n'

    # -- models ------------------------------------------------------------

    def health(self, req: Request, match: re.Match[str], sw: Switches) -> Reply:
        return Reply(200, b"", "text/plain")

    def _model(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "orchard-fake"}

    def list_models(self, req: Request, match: re.Match[str], sw: Switches) -> Reply:
        return json_reply(200, {"object": "list", "data": [self._model(m) for m in sw.models]})

    def get_model(self, req: Request, match: re.Match[str], sw: Switches) -> Reply:
        model = match["model"]
        return json_reply(200, self._model(model)) if model in sw.models else self.model_missing(model)

    # -- chat --------------------------------------------------------------

    def model_of(self, req: Request, match: re.Match[str]) -> Any:
        """The model (Azure: the deployment) a chat request is for."""
        return req.body.get("model")

    def chat(self, req: Request, match: re.Match[str], sw: Switches) -> Reply | Stream:
        body = req.body
        if not isinstance(body, dict):
            return self.error(400, "We could not parse the JSON body of your request.")
        refused = self.refuse_chat(body, sw)
        if refused is not None:
            return refused
        model = self.model_of(req, match)
        if not isinstance(model, str) or not model:
            return self.error(400, "You must provide a model parameter.", param="model", code=None)
        if model not in sw.models:
            return self.model_missing(model)
        messages = body["messages"]
        answer = plan_answer(
            [text_of(m.get("content")) for m in messages if isinstance(m, dict)],
            next((text_of(m.get("content")) for m in reversed(messages)
                  if isinstance(m, dict) and m.get("role") == "user"), None),
            sw,
            body.get("max_completion_tokens", body.get("max_tokens")),
        )
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return self.stream(self.stream_frames(req, model, answer, sw, include_usage))
        return json_reply(200, self.completion(req, model, answer, sw))

    def refuse_chat(self, body: dict[str, Any], sw: Switches) -> Reply | None:
        if "stream_options" in body and sw.reject_stream_options:
            # What servers that predate stream_options answer (older vLLM,
            # llama.cpp builds, Azure before api-version 2024-09-01-preview).
            return self.error(400, "Unrecognized request argument supplied: stream_options",
                              param="stream_options", code=None)
        if body.get("stream_options") is not None and body.get("stream") is not True:
            return self.error(
                400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options", code=None)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error(400, "Missing required parameter: 'messages'.",
                              param="messages", code="missing_required_parameter")
        return None

    def usage(self, answer: Answer) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.total_tokens,
        }
        if answer.reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": answer.reasoning_tokens}
        return usage

    def completion(self, req: Request, model: str, answer: Answer, sw: Switches) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.reasoning and sw.reasoning_style == "think_tags":
            message["content"] = f"<think>{answer.reasoning}</think>{answer.text}"
        elif answer.reasoning:
            message[_reasoning_field(sw)] = answer.reasoning
        result: dict[str, Any] = {
            "id": f"chatcmpl-fake{req.index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            **self.completion_extra(),
            "choices": [{
                "index": 0, "message": message, "logprobs": None,
                "finish_reason": answer.finish, **self.choice_extra(),
            }],
        }
        if sw.usage:
            result["usage"] = self.usage(answer)
        return result

    def stream_frames(self, req: Request, model: str, answer: Answer, sw: Switches,
                      include_usage: bool) -> list[bytes]:
        head = {
            "id": f"chatcmpl-fake{req.index}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            if delta.get("content"):
                choice.update(self.choice_extra())
            frame: dict[str, Any] = {**head, "choices": [choice]}
            if include_usage:
                # OpenAI sends "usage": null on every chunk but the last one.
                frame["usage"] = None
            return sse_data(frame)

        frames = [*self.prelude_frames(), chunk({"role": "assistant"})]
        if answer.reasoning and sw.reasoning_style == "think_tags":
            # Tags cut mid-word, as token boundaries cut them in real streams.
            tagged = ["<thi", "nk>", *answer.reasoning_pieces, "</thi", "nk>"]
            frames += [chunk({"content": p}) for p in tagged]
        elif answer.reasoning:
            field = _reasoning_field(sw)
            frames += [chunk({field: p}) for p in answer.reasoning_pieces]
        frames += [chunk({"content": p}) for p in answer.text_pieces]
        frames.append(chunk({}, answer.finish))
        if include_usage and sw.usage:
            frames.append(sse_data({**head, "choices": [], "usage": self.usage(answer)}))
        frames.append(b"data: [DONE]\n\n")
        return frames

    # -- Azure hooks -------------------------------------------------------

    def prelude_frames(self) -> list[bytes]:
        return []

    def choice_extra(self) -> dict[str, Any]:
        return {}

    def completion_extra(self) -> dict[str, Any]:
        return {}


def _reasoning_field(sw: Switches) -> str:
    # vLLM and DeepSeek say reasoning_content; OpenRouter and newer vLLM say reasoning.
    return "reasoning" if sw.reasoning_style == "reasoning" else "reasoning_content"
