"""The config file's shape, declared once.

These Structs are the single source of truth for ``config.toml``: the daemon
validates every load against them, ``schema/config.schema.json`` is generated
from them (``scripts/gen-schema``), and ``docs/config.md`` documents them.
Keys are snake_case, in the user's words. Unknown keys are errors that name
their path, so a typo never silently does nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

ProviderType = Literal["openai", "anthropic", "gemini", "azure-openai"]
PROVIDER_TYPES: tuple[str, ...] = ("openai", "anthropic", "gemini", "azure-openai")

Capability = Literal[
    "text", "vision", "reasoning", "function_calling", "embedding", "rerank", "web_search"
]
CAPABILITIES: tuple[str, ...] = Capability.__args__  # type: ignore[attr-defined]

Seconds = Annotated[float, Meta(gt=0)]

ProviderId = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="A provider's id: lower-case letters, digits, `-` and `_`.",
    ),
]

ApiKeyValue = Annotated[
    str,
    Meta(
        description=(
            "An API key; `env:NAME` reads the environment variable NAME, `cmd:PROGRAM ARGS` "
            "runs a command (without a shell) and uses what it prints. Both are resolved "
            "only when a request needs the key. Empty means no key (local servers)."
        )
    ),
]


class ModelConfig(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A model with a display name, group or capabilities of its own."""

    id: Annotated[str, Meta(min_length=1, description="The model id the provider knows it by (for Azure: the deployment name).")]
    name: Annotated[str | None, Meta(description="The name shown in model pickers; defaults to the id.")] = None
    group: Annotated[str | None, Meta(description="The group it is listed under; inferred from the id when unset.")] = None
    capabilities: Annotated[
        list[Capability] | None,
        Meta(description="What it can do; inferred from the id when unset."),
    ] = None


ModelEntry = Annotated[
    str | ModelConfig,
    Meta(description="A model id, or a table `{ id, name, group, capabilities }`."),
]


class ProviderConfig(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One AI provider: where it is, how to authenticate, which models to offer."""

    name: Annotated[str, Meta(min_length=1, description="The name shown to people, e.g. `vLLM`.")]
    type: Annotated[
        ProviderType,
        Meta(description="The API it speaks. Any OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio) is `openai`."),
    ]
    enabled: Annotated[bool, Meta(description="Switch the provider off without removing it.")] = True
    api_key: Annotated[
        ApiKeyValue | list[ApiKeyValue],
        Meta(description="The API key, or a list of keys used in turn (with failover on 401, 403 and 429)."),
    ] = ""
    api_address: Annotated[
        str,
        Meta(
            description=(
                "The API address (base URL). `/v1` is appended unless the path already has a "
                "version (Gemini: `/v1beta`); end it with `#` to use it exactly as written. "
                "Empty means the type's official address."
            )
        ),
    ] = ""
    api_version: Annotated[str | None, Meta(description="Azure OpenAI's `api-version`, e.g. `2024-10-21`.")] = None
    headers: Annotated[dict[str, str], Meta(description="Extra HTTP headers sent with every request.")] = {}
    timeout: Annotated[
        Seconds | None,
        Meta(description="Seconds to wait for the next piece of an answer before giving up (default 60)."),
    ] = None
    connect_timeout: Annotated[
        Seconds | None, Meta(description="Seconds to wait for a connection (default 10).")
    ] = None
    proxy: Annotated[
        str | None, Meta(description="Proxy URL for this provider only, e.g. `http://127.0.0.1:3128`.")
    ] = None
    models: Annotated[list[ModelEntry], Meta(description="The models offered from this provider.")] = []
    notes: Annotated[str | None, Meta(description="Free text for yourself.")] = None


class Config(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The whole of ``config.toml``."""

    default_model: Annotated[
        str | None,
        Meta(description="The model chats use when none is picked, as `provider/model`, e.g. `vllm/gpt2`."),
    ] = None
    providers: Annotated[
        dict[ProviderId, ProviderConfig],
        Meta(description="Providers, keyed by id: `[providers.vllm]`."),
    ] = {}


def model_id(entry: str | ModelConfig) -> str:
    return entry if isinstance(entry, str) else entry.id


def key_values(api_key: str | list[str]) -> list[str]:
    """The configured key values as a list; empty when there is no key."""
    values = [api_key] if isinstance(api_key, str) else list(api_key)
    return [v for v in values if v != ""]


def json_schema() -> dict:
    """The JSON Schema of ``config.toml`` (for Taplo / Even Better TOML and validation)."""
    schema = msgspec.json.schema(Config)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = "Orchard config"
    schema["description"] = "Orchard's config.toml: AI providers and their models."
    return schema
