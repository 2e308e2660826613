"""Provider and model management: the service behind ``provider/*`` and ``model/*``.

Turns protocol requests into edits of the config document (through
:class:`~orchard.config.service.ConfigService`, so every change is
validated, written atomically and announced) and describes providers for
clients without ever handing out a key: :func:`describe` shows where a key
comes from and a few characters of it, never its value.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from msgspec import UNSET

from orchard.api import protocol as p
from orchard.config import edit
from orchard.config.schema import ModelConfig, ProviderConfig, key_values
from orchard.config.service import ConfigService
from orchard.errors import InvalidParams, NotFound
from orchard.providers.base import ProviderSettings
from orchard.providers.keys import preview as key_preview
from orchard.providers.keys import split_keys
from orchard.providers.models import infer_capabilities, infer_group

#: Header names whose values are credentials: shown as a preview only.
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)


class ProviderService:
    def __init__(self, config: ConfigService) -> None:
        self.config = config

    # -- reading ----------------------------------------------------------------

    def list(self) -> p.ProviderList:
        cfg = self.config.config
        return p.ProviderList(
            providers=[describe(pid, pc) for pid, pc in cfg.providers.items()],
            default_model=cfg.default_model,
            revision=self.config.revision,
        )

    def get(self, pid: str) -> p.ProviderResult:
        return p.ProviderResult(provider=self._describe(pid), revision=self.config.revision)

    def require(self, pid: str) -> ProviderConfig:
        provider = self.config.provider(pid)
        if provider is None:
            known = ", ".join(self.config.config.providers) or "none yet"
            raise NotFound(
                f"There is no provider `{pid}` (providers: {known}).",
                hint="Run `orchard provider list` to see the provider ids, or `orchard provider add`.",
                providerId=pid,
            )
        return provider

    def _describe(self, pid: str) -> p.ProviderInfo:
        return describe(pid, self.require(pid))

    # -- providers ----------------------------------------------------------------

    async def add(self, params: p.ProviderAdd) -> p.ProviderResult:
        fields: dict[str, Any] = {
            "name": _required_text(params.name, "name"),
            "type": params.type,
            "enabled": True if params.enabled is UNSET else params.enabled,
            "api_key": "" if params.api_key is UNSET else _key_param(params.api_key),
            "api_address": "" if params.api_address is UNSET else params.api_address.strip(),
        }
        for name in ("api_version", "headers", "timeout", "connect_timeout", "proxy", "notes"):
            value = getattr(params, name)
            if value is not UNSET:
                fields[name] = value
        fields["models"] = [] if params.models is UNSET else _ids(params.models)

        def change(doc) -> str:
            taken = set(doc.get("providers", {}))
            if params.id is not UNSET:
                pid = params.id
            else:
                pid = edit.unique_id(edit.slug(params.name), taken)
            edit.add_provider(doc, pid, fields)
            return pid

        pid, revision = await self.config.edit(change)
        return p.ProviderResult(provider=self._describe(pid), revision=revision)

    async def update(self, params: p.ProviderUpdate) -> p.ProviderResult:
        self.require(params.id)
        fields: dict[str, Any] = {}
        for name in (
            "name", "type", "enabled", "api_key", "api_address", "api_version",
            "headers", "timeout", "connect_timeout", "proxy", "notes",
        ):  # fmt: skip
            value = getattr(params, name)
            if value is UNSET:
                continue
            if name == "api_key" and value is not None:
                value = _key_param(value)
            if name == "name":
                value = _required_text(value, "name")
            if name == "api_address" and value is not None:
                value = value.strip()
            fields[name] = value
        _, revision = await self.config.edit(
            lambda doc: edit.update_provider(doc, params.id, fields), revision=_rev(params.revision)
        )
        return p.ProviderResult(provider=self._describe(params.id), revision=revision)

    async def remove(self, params: p.ProviderRemove) -> p.Removed:
        self.require(params.id)
        _, revision = await self.config.edit(
            lambda doc: edit.remove_provider(doc, params.id), revision=_rev(params.revision)
        )
        return p.Removed(id=params.id, revision=revision)

    # -- models ---------------------------------------------------------------------

    async def add_models(self, params: p.ModelAdd) -> p.ModelsChanged:
        self.require(params.provider_id)
        ids = _ids(params.ids)
        added, revision = await self.config.edit(
            lambda doc: edit.add_models(doc, params.provider_id, ids), revision=_rev(params.revision)
        )
        return p.ModelsChanged(provider=self._describe(params.provider_id), ids=added, revision=revision)

    async def remove_models(self, params: p.ModelRemove) -> p.ModelsChanged:
        self.require(params.provider_id)
        removed, revision = await self.config.edit(
            lambda doc: edit.remove_models(doc, params.provider_id, _ids(params.ids)),
            revision=_rev(params.revision),
        )
        return p.ModelsChanged(provider=self._describe(params.provider_id), ids=removed, revision=revision)

    async def update_model(self, params: p.ModelUpdate) -> p.ProviderResult:
        self.require(params.provider_id)
        fields = {
            name: getattr(params, name)
            for name in ("name", "group", "capabilities")
            if getattr(params, name) is not UNSET
        }
        _, revision = await self.config.edit(
            lambda doc: edit.update_model(doc, params.provider_id, params.id, fields),
            revision=_rev(params.revision),
        )
        return p.ProviderResult(provider=self._describe(params.provider_id), revision=revision)


# -- describing a provider without its secrets ------------------------------------


def describe(pid: str, pc: ProviderConfig) -> p.ProviderInfo:
    values = key_values(pc.api_key)
    keys = [p.KeyInfo(source=key_source(v), preview=key_preview(v)) for v in values]
    api_key = p.ApiKeyInfo(
        source=keys[0].source if keys else "none",
        preview=keys[0].preview if keys else "",
        count=len(keys),
        keys=keys,
    )
    settings = settings_for(pid, pc)
    first_model = _model_id(pc.models[0]) if pc.models else None
    try:
        ends = _adapter(settings).endpoints(first_model)
        endpoints = p.Endpoints(chat=ends.chat, models=ends.models)
    except Exception:  # an unusable address is shown as no endpoint; Check explains why
        endpoints = p.Endpoints(chat=None, models=None)
    return p.ProviderInfo(
        id=pid,
        name=pc.name,
        type=pc.type,
        enabled=pc.enabled,
        api_address=pc.api_address,
        api_version=pc.api_version,
        headers={k: (key_preview(v) if _SECRET_HEADER.search(k) else v) for k, v in pc.headers.items()},
        timeout=pc.timeout,
        connect_timeout=pc.connect_timeout,
        proxy=_without_password(pc.proxy),
        notes=pc.notes,
        models=[_model_info(m) for m in pc.models],
        api_key=api_key,
        endpoints=endpoints,
    )


def _model_info(entry: str | ModelConfig) -> p.ModelInfo:
    mid = _model_id(entry)
    if isinstance(entry, str):
        return p.ModelInfo(id=mid, name=mid, group=infer_group(mid), capabilities=infer_capabilities(mid))
    return p.ModelInfo(
        id=mid,
        name=entry.name or mid,
        group=entry.group or infer_group(mid),
        capabilities=list(entry.capabilities) if entry.capabilities is not None else infer_capabilities(mid),
    )


def key_source(value: str) -> str:
    if value.startswith("env:"):
        return "env"
    if value.startswith("cmd:"):
        return "cmd"
    return "literal"


def _adapter(settings: ProviderSettings):
    from orchard.providers.anthropic import AnthropicAdapter
    from orchard.providers.azure_openai import AzureOpenAIAdapter
    from orchard.providers.gemini import GeminiAdapter
    from orchard.providers.openai import OpenAIAdapter

    cls = {
        "openai": OpenAIAdapter,
        "anthropic": AnthropicAdapter,
        "gemini": GeminiAdapter,
        "azure-openai": AzureOpenAIAdapter,
    }[settings.type]
    return cls(settings)


def _model_id(entry: str | ModelConfig) -> str:
    return entry if isinstance(entry, str) else entry.id


def _without_password(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:…@{host}"))


# -- params --------------------------------------------------------------------------


def _key_param(value: str | list[str]) -> str | list[str]:
    """A key as stored: a string, or a list for several keys.

    Like Cherry Studio, a string with commas holds several keys (`\\,` is a
    literal comma); `env:`/`cmd:` references are kept whole.
    """
    if isinstance(value, list):
        keys = [v.strip() for v in value if v.strip()]
    elif value.startswith("cmd:"):
        keys = [value.strip()]
    else:
        keys = [k for k in split_keys(value) if k]
    if not keys:
        return ""
    return keys[0] if len(keys) == 1 else keys


def _ids(ids: list[str]) -> list[str]:
    out = []
    for raw in ids:
        mid = raw.strip()
        if not mid:
            raise InvalidParams("A model id is empty.", hint="Give model ids such as `gpt2`.")
        out.append(mid)
    return out


def _required_text(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidParams(f"Invalid params: `{field}` is empty.", hint=f"Give the provider a {field}.", field=field)
    return value.strip()


def _rev(revision: int | Any) -> int | None:
    return None if revision is UNSET else revision


def settings_for(pid: str, pc: ProviderConfig) -> ProviderSettings:
    """What the provider layer needs from one provider's config (it never reads the config)."""
    return ProviderSettings(
        id=pid,
        type=pc.type,
        api_address=pc.api_address,
        api_keys=tuple(key_values(pc.api_key)),
        api_version=pc.api_version,
        headers=dict(pc.headers),
        timeout=pc.timeout or 60.0,
        connect_timeout=pc.connect_timeout or 10.0,
        proxy=pc.proxy,
    )
