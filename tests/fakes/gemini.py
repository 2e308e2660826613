"""The Gemini (Generative Language API) dialect.

Serves ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (SSE
``data:`` lines ending in CRLF CRLF as Google sends them; without ``alt=sse``
a streamed JSON array), ``:generateContent``, and ``GET /v1beta/models``
paged with ``pageSize``/``pageToken`` (also under ``/v1``). The key comes in
``x-goog-api-key`` or ``?key=``; as on Google's servers a missing key is 403
PERMISSION_DENIED and a wrong one 400 INVALID_ARGUMENT "API key not valid".
"""

from __future__ import annotations

import base64
import re
from typing import Any

from .answer import Answer, plan_answer, text_of
from .common import Dialect, Reply, Request, Route, Stream, dumps, json_reply, page_limit, sse_data
from .switches import Switches

__all__ = ["GeminiDialect"]

_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
                      "https://developers.generativeai.google/guide/troubleshooting"),
    502: ("UNAVAILABLE", "Bad gateway."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}

_CHAT_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_KNOWN = {
    "gemini-2.5-flash": ("Gemini 2.5 Flash", _CHAT_METHODS),
    "gemini-2.5-pro": ("Gemini 2.5 Pro", _CHAT_METHODS),
    "text-embedding-004": ("Text Embedding 004", ["embedContent"]),
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}
_CRLF2 = b"\r\n\r\n"
_MODEL = r"/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+)"


class GeminiDialect(Dialect):
    type = "gemini"
    default_models = tuple(_KNOWN)

    def build_routes(self) -> list[Route]:
        return [
            Route("GET", r"/(?P<version>v1|v1beta)/models", self.list_models),
            Route("GET", _MODEL, self.get_model),
            Route("POST", _MODEL + r":streamGenerateContent", self.generate),
            Route("POST", _MODEL + r":generateContent", self.generate),
        ]

    def key_of(self, req: Request) -> str | None:
        return req.header("x-goog-api-key") or req.query.get("key") or None

    def error(self, status: int, message: str | None = None, *, details: list[Any] | None = None,
              retry_after: float | None = None, **_: Any) -> Reply:
        code, default = _STATUS.get(status, ("UNKNOWN", f"HTTP {status}"))
        body: dict[str, Any] = {"code": status, "message": message or default, "status": code}
        if retry_after is not None:
            details = [*(details or []), {
                "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}]
        if details:
            body["details"] = details
        return json_reply(status, {"error": body})

    def key_error(self, req: Request, key: str | None) -> Reply:
        if key is None:
            return self.error(403, "Method doesn't allow unregistered callers (callers without "
                                   "established identity). Please use API Key or other form of "
                                   "API consumer identity to call this API.")
        return self.error(400, "API key not valid. Please pass a valid API key.", details=[{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }])

    def stream_error_frame(self) -> bytes:
        return sse_data({"error": {"code": 503, "message": _STATUS[503][1], "status": "UNAVAILABLE"}},
                        _CRLF2)

    def malformed_frame(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": "oo' + _CRLF2

    # -- models ------------------------------------------------------------

    def _model(self, model_id: str) -> dict[str, Any]:
        name, methods = _KNOWN.get(model_id, (model_id, _CHAT_METHODS[:2]))
        return {
            "name": f"models/{model_id}", "version": "001", "displayName": name,
            "description": f"{name} (Orchard fake)", "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536, "supportedGenerationMethods": list(methods),
        }

    def list_models(self, req: Request, match: re.Match[str], sw: Switches) -> Reply:
        size = page_limit(req.query.get("pageSize"), 50, 1000, sw)
        start = _decode_token(req.query.get("pageToken"))
        if size is None or start is None or start > len(sw.models):
            return self.error(400, "Invalid page token or page size.")
        page = sw.models[start:start + size]
        body: dict[str, Any] = {"models": [self._model(m) for m in page]}
        if start + size < len(sw.models):
            body["nextPageToken"] = _encode_token(start + size)
        return json_reply(200, body)

    def get_model(self, req: Request, match: re.Match[str], sw: Switches) -> Reply:
        model = match["model"]
        if model not in sw.models:
            return self.error(404, f"models/{model} is not found for API version {match['version']}.")
        return json_reply(200, self._model(model))

    # -- generate ----------------------------------------------------------

    def generate(self, req: Request, match: re.Match[str], sw: Switches) -> Reply | Stream:
        body = req.body
        if not isinstance(body, dict):
            return self.error(400, "Invalid JSON payload received.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return self.error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        if any(isinstance(c, dict) and c.get("role", "user") not in ("user", "model") for c in contents):
            return self.error(400, "Please use a valid role: user, model.")
        model = match["model"]
        if model not in sw.models or "generateContent" not in self._model(model)["supportedGenerationMethods"]:
            return self.error(404, f"models/{model} is not found for API version "
                                   f"{match['version']}, or is not supported for generateContent. "
                                   "Call ListModels to see the list of available models and their "
                                   "supported methods.")
        system = body.get("systemInstruction")
        texts = [text_of(system.get("parts"))] if isinstance(system, dict) else []
        texts += [text_of(c.get("parts")) for c in contents if isinstance(c, dict)]
        last_user = next((text_of(c.get("parts")) for c in reversed(contents)
                          if isinstance(c, dict) and c.get("role", "user") == "user"), None)
        config = body.get("generationConfig") or {}
        answer = plan_answer(texts, last_user, sw, config.get("maxOutputTokens"))
        chunks = response_chunks(model, f"fake{req.index}", answer, sw)
        if req.path.endswith(":generateContent"):
            return json_reply(200, whole_response(model, f"fake{req.index}", answer, sw))
        if req.query.get("alt") == "sse":
            return self.stream([sse_data(c, _CRLF2) for c in chunks])
        # Without alt=sse Google streams one JSON array, element by element.
        frames = [b"[" + dumps(chunks[0])] + [b",\r\n" + dumps(c) for c in chunks[1:]] + [b"]"]
        error = b',\r\n{"error":' + dumps({"code": 503, "message": _STATUS[503][1],
                                            "status": "UNAVAILABLE"}) + b"}]"
        return Stream(frames, error, b',\r\n{"candidates": [', content_type="application/json")


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: str | None) -> int | None:
    if not token:
        return 0
    try:
        prefix, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        return int(number) if prefix == "offset" else None
    except ValueError:
        return None


def _usage(answer: Answer, final: bool) -> dict[str, int]:
    if not final:
        return {"promptTokenCount": answer.prompt_tokens, "totalTokenCount": answer.prompt_tokens}
    usage = {
        "promptTokenCount": answer.prompt_tokens,
        "candidatesTokenCount": answer.text_tokens,
        "totalTokenCount": answer.total_tokens,
    }
    if answer.reasoning:
        usage["thoughtsTokenCount"] = answer.reasoning_tokens
    return usage


def _response(model: str, rid: str, parts: list[dict[str, Any]], answer: Answer, sw: Switches,
              final: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = _FINISH[answer.finish]
    result: dict[str, Any] = {"candidates": [candidate]}
    if sw.usage:
        result["usageMetadata"] = _usage(answer, final)
    result["modelVersion"] = model
    result["responseId"] = rid
    return result


def response_chunks(model: str, rid: str, answer: Answer, sw: Switches) -> list[dict[str, Any]]:
    parts = [{"text": p, "thought": True} for p in answer.reasoning_pieces]
    parts += [{"text": p} for p in answer.text_pieces] or [{"text": ""}]
    last = len(parts) - 1
    return [_response(model, rid, [part], answer, sw, i == last) for i, part in enumerate(parts)]


def whole_response(model: str, rid: str, answer: Answer, sw: Switches) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if answer.reasoning:
        parts.append({"text": answer.reasoning, "thought": True})
    parts.append({"text": answer.text})
    return _response(model, rid, parts, answer, sw, True)
