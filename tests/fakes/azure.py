"""The Azure OpenAI dialect: OpenAI's chat format behind Azure's paths,
``api-key`` header, ``api-version`` query and ``{"error":{"code","message"}}``
bodies.

Serves ``POST /openai/deployments/{deployment}/chat/completions?api-version=V``
and the newer v1 surface ``POST /openai/v1/chat/completions`` (deployment in
the body's ``model``). The ``models`` switch lists the deployments. A stream
opens with Azure's prompt-filter chunk (``"choices": []``) and content chunks
carry content-filter results. There is no deployment listing: like Azure's
data plane, anything else is 404 "Resource not found".
"""

from __future__ import annotations

import re
from typing import Any

from .common import Reply, Request, Route, Stream, json_reply, sse_data
from .openai import OpenAIDialect
from .switches import Switches

__all__ = ["AzureDialect"]

_SAFE = {
    name: {"filtered": False, "severity": "safe"}
    for name in ("hate", "self_harm", "sexual", "violence")
}
_PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": _SAFE}]

_MESSAGES = {
    400: ("BadRequest", "Invalid request."),
    401: ("401", "Access denied due to invalid subscription key or wrong API endpoint. "
                 "Make sure to provide a valid key for an active subscription and use a "
                 "correct regional API endpoint for your resource."),
    403: ("403", "Public access is disabled. Please configure private endpoint."),
    404: ("404", "Resource not found"),
    429: ("429", "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
                 "version 2024-10-21 have exceeded call rate limit of your current OpenAI S0 "
                 "pricing tier. Please retry after {retry} seconds."),
    500: ("InternalServerError", "The server had an error while processing your request. "
                                 "Sorry about that!"),
    503: ("ServiceUnavailable", "The service is temporarily unable to process your request. "
                                "Please try again later."),
}


class AzureDialect(OpenAIDialect):
    type = "azure-openai"
    default_models = ("gpt-4o-mini",)

    def build_routes(self) -> list[Route]:
        return [
            # The key is checked inside, after api-version: without it Azure
            # answers 404 whatever the key.
            Route("POST", r"/openai/deployments/(?P<deployment>[^/]+)/chat/completions",
                  self.deployment_chat, needs_key=False),
            Route("POST", r"/openai/v1/chat/completions", self.chat),
        ]

    def key_of(self, req: Request) -> str | None:
        return req.header("api-key") or super().key_of(req)

    def error(self, status: int, message: str | None = None, *, code: Any = None,
              retry_after: float | None = None, **_: Any) -> Reply:
        default_code, default_message = _MESSAGES.get(status, (str(status), f"HTTP {status}"))
        default_message = default_message.format(
            retry=int(retry_after) if retry_after is not None else 1)
        return json_reply(status, {"error": {
            "code": code or default_code, "message": message or default_message}})

    def key_error(self, req: Request, key: str | None) -> Reply:
        if key is None:
            return self.error(401, "Access denied due to missing subscription key. Make sure "
                                   "to include subscription key when making requests to an API.")
        return self.error(401)

    def not_found(self, req: Request) -> Reply:
        return self.error(404)

    def model_missing(self, model: str) -> Reply:
        return self.error(404, "The API deployment for this resource does not exist. If you "
                               "created the deployment within the last 5 minutes, please wait "
                               "a moment and try again.", code="DeploymentNotFound")

    def deployment_chat(self, req: Request, match: re.Match[str], sw: Switches) -> Reply | Stream:
        if not req.query.get("api-version"):
            return self.error(404)
        return self.refuse_key(req, sw) or self.chat(req, match, sw)

    def model_of(self, req: Request, match: re.Match[str]) -> Any:
        deployment = match.groupdict().get("deployment")
        return deployment if deployment is not None else req.body.get("model")

    def prelude_frames(self) -> list[bytes]:
        return [sse_data({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                          "prompt_filter_results": _PROMPT_FILTER})]

    def choice_extra(self) -> dict[str, Any]:
        return {"content_filter_results": _SAFE}

    def completion_extra(self) -> dict[str, Any]:
        return {"prompt_filter_results": _PROMPT_FILTER}
