"""The provider settings page as a service: the one behind ``provider/*`` and ``model/*``.

Adding, editing and removing providers and models turns into edits of the
config document (through :class:`~orchard.config.service.ConfigService`, so
every change is validated, written atomically and announced). Check, fetch
and detect go to the providers' servers through the provider layer. Clients
are shown providers through :func:`~orchard.config.views.describe`, which
never hands out a key.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from orchard.api import protocol as p
from orchard.config import edit
from orchard.config.schema import ProviderConfig
from orchard.config.service import ConfigService
from orchard.config.views import describe, settings_for
from orchard.errors import InvalidParams, NotFound
from orchard.providers import ProviderClient, split_keys
from orchard.providers.detect import detect
from orchard.providers.pool import ProviderPool


class ProviderService:
    def __init__(self, config: ConfigService) -> None:
        self.config = config
        self.pool = ProviderPool(lambda pid: settings_for(pid, self.require(pid)))

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


    # -- talking to the provider's server ---------------------------------------------

    async def check(self, params: p.ProviderCheck) -> p.CheckResult:
        """Cherry's Check button: probe with the saved values, or the ones typed into a form."""
        saved = self.require(params.provider_id)
        settings = settings_for(params.provider_id, saved)
        overrides: dict[str, Any] = {}
        if params.api_address is not UNSET:
            overrides["api_address"] = params.api_address.strip()
        if params.api_version is not UNSET:
            overrides["api_version"] = params.api_version or None
        if params.api_key is not UNSET:
            key = _key_param(params.api_key)
            overrides["api_keys"] = tuple([key] if isinstance(key, str) else key)
        if overrides:
            settings = msgspec.structs.replace(settings, **overrides)
        model = params.model if params.model is not UNSET else (_first_model(saved) or None)
        async with ProviderClient(settings, key_cache=self.pool.keys) as client:
            result = await client.check(model)
        return msgspec.convert(result, p.CheckResult, from_attributes=True)

    async def fetch_models(self, params: p.ModelFetch) -> p.FetchResult:
        """The provider's own model list, each marked `added` when it is already configured."""
        saved = self.require(params.provider_id)
        have = {m if isinstance(m, str) else m.id for m in saved.models}
        async with self.pool.use(params.provider_id) as client:
            fetched = await client.fetch_models()
        return p.FetchResult(
            provider_id=params.provider_id,
            models=[
                p.FetchedModel(id=m.id, name=m.name, group=m.group, capabilities=list(m.capabilities), added=m.id in have)
                for m in fetched
            ],
        )

    async def detect(self) -> p.DetectResult:
        """Local OpenAI-compatible servers on 127.0.0.1 that answer, ready to add."""
        found, probed = await detect()
        by_address = {
            _norm(pc.api_address): pid for pid, pc in self.config.config.providers.items() if pc.type == "openai"
        }
        return p.DetectResult(
            servers=[
                p.DetectedServer(
                    name=f.name,
                    kind=f.kind,
                    api_address=f.api_address,
                    models=f.models,
                    provider_id=by_address.get(_norm(f.api_address)),
                )
                for f in found
            ],
            probed=probed,
        )


def _first_model(pc: ProviderConfig) -> str | None:
    if not pc.models:
        return None
    first = pc.models[0]
    return first if isinstance(first, str) else first.id


def _norm(address: str) -> str:
    return address.strip().rstrip("/").replace("://localhost", "://127.0.0.1").removesuffix("/v1")


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


