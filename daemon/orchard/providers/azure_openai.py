"""Azure OpenAI: the OpenAI format at a per-deployment URL, with an `api-key` header.

The "model" a user adds is the deployment name. Its stream is OpenAI's, whose
first chunk may have empty ``choices`` and ``prompt_filter_results`` (it
yields nothing, by the OpenAI parser's own rules). Deployments cannot be
listed through the data-plane API, so fetching models says so plainly.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderUnavailable
from .address import AZURE_API_VERSION, AddressError, azure_endpoints
from .base import ChatRequest, Endpoints
from .openai import OpenAIAdapter, unavailable


class AzureOpenAIAdapter(OpenAIAdapter):
    def endpoints(self, model: str | None = None) -> Endpoints:
        try:
            return azure_endpoints(
                self.settings.api_address, model, self.settings.api_version or AZURE_API_VERSION
            )
        except AddressError as exc:
            raise unavailable(self.settings, exc) from None

    def build_chat(
        self, req: ChatRequest, *, stream_options: bool = True
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        # The deployment URL ignores "model" in the body; the v1 surface needs it. Send it always.
        body = self.chat_body(req, stream_options=stream_options)
        return self.endpoints(req.model).chat, {"Content-Type": "application/json"}, body

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key} if key else {}

    def models_request(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        self.endpoints(None)  # a missing address is the more useful thing to report
        raise ProviderUnavailable(
            f"Provider {self.settings.id!r} is Azure OpenAI, whose deployments cannot be "
            "listed through its API.",
            hint=f"add each deployment by name: `orchard model add {self.settings.id} DEPLOYMENT`",
            providerId=self.settings.id,
        )

