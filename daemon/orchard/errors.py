"""Orchard's one exception tree, and the JSON-RPC codes it maps to.

Every error a person can see is an :class:`OrchardError`. Each carries a
``kind`` (a stable machine-readable word), a ``message`` that says what went
wrong and a ``hint`` that says what to do next. Errors from dependencies are
translated into this tree once, where they enter (httpx in ``providers``,
msgspec/tomlkit in ``config``); the RPC layer turns the tree into JSON-RPC
error objects in one place (``orchard.server.rpc``).

::

    OrchardError                       -32000
    ├── InvalidParams                  -32602
    ├── NotFound                       -32004
    ├── AlreadyExists                  -32005
    ├── StaleRevision                  -32010
    ├── ConfigInvalid                  -32011
    ├── ProviderUnavailable            -32020  (disabled, no models, no key)
    └── ProviderError                  -32030  (the provider's server said no)

No error message ever contains an API key: messages are built from ids,
names, URLs with their query strings dropped, and the provider's own error
text, which is scrubbed of anything that looks like the key we sent.
"""

from __future__ import annotations

from typing import Any

# JSON-RPC 2.0 reserved codes (https://www.jsonrpc.org/specification#error_object)
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# LSP's code for a request cancelled by `$/cancelRequest`.
REQUEST_CANCELLED = -32800


class OrchardError(Exception):
    """Base of every error Orchard reports to a person or a client."""

    code: int = -32000
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.data = {k: v for k, v in data.items() if v is not None}

    def to_data(self) -> dict[str, Any]:
        """The `data` member of the JSON-RPC error object."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.hint:
            out["hint"] = self.hint
        out.update(self.data)
        return out

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        stop = "" if self.message.rstrip().endswith((".", "!", "?", ":")) else "."
        return f"{self.message}{stop} {self.hint[:1].upper()}{self.hint[1:]}"


class InvalidParams(OrchardError):
    code = INVALID_PARAMS
    kind = "invalid_params"


class NotFound(OrchardError):
    code = -32004
    kind = "not_found"


class AlreadyExists(OrchardError):
    code = -32005
    kind = "already_exists"


class StaleRevision(OrchardError):
    """A write named a config revision older than the current one."""

    code = -32010
    kind = "stale_revision"


class ConfigInvalid(OrchardError):
    """The config file on disk does not parse or validate.

    ``data`` carries ``path``, ``line`` and ``column`` (1-based) of the problem.
    """

    code = -32011
    kind = "config_invalid"


class ProviderUnavailable(OrchardError):
    """The provider exists but cannot be used as asked (disabled, no models...)."""

    code = -32020
    kind = "provider_unavailable"


class ProviderError(OrchardError):
    """A provider's server refused, failed or could not be reached.

    ``kind`` is one of the classes in :data:`PROVIDER_ERROR_KINDS`; ``data``
    carries ``status`` (HTTP status, when there was one), ``url`` (without
    query string), ``providerMessage`` (the server's own words) and
    ``retryAfter`` (seconds) when the server sent one.
    """

    code = -32030

    def __init__(self, kind: str, message: str, *, hint: str | None = None, **data: Any) -> None:
        super().__init__(message, hint=hint, **data)
        self.kind = kind


#: The failure classes of a provider request, each with a hint people can act on.
PROVIDER_ERROR_KINDS = (
    "unreachable",  # connection refused, DNS failure
    "tls",  # certificate or handshake problem
    "wrong_address",  # 404 on the endpoint itself
    "bad_key",  # 401 / 403
    "unknown_model",  # the model or Azure deployment does not exist
    "rate_limited",  # 429
    "server_error",  # 5xx, or an error event inside the stream
    "timeout",  # connect, idle or total deadline passed
    "not_an_api",  # HTML or garbage where JSON was expected
    "bad_request",  # 400 / 422 for other reasons
)
