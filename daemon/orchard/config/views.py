"""How a provider is shown to clients: its settings, never its secrets.

:func:`describe` turns one provider's config into the wire view: key
sources and previews instead of keys, credential-looking header values and
proxy passwords masked, models with their inferred group and capabilities,
and the exact endpoints requests will go to. :func:`settings_for` is what the
provider layer gets from the same config.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from orchard.api import protocol as p
from orchard.config.schema import ModelConfig, ProviderConfig, key_values, model_id
from orchard.providers import ProviderSettings, adapter_for, infer_capabilities, infer_group, key_preview, key_source

#: Header names whose values are credentials: shown as a preview only.
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)


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
    first_model = model_id(pc.models[0]) if pc.models else None
    try:
        ends = adapter_for(settings).endpoints(first_model)
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
    mid = model_id(entry)
    if isinstance(entry, str):
        return p.ModelInfo(id=mid, name=mid, group=infer_group(mid), capabilities=infer_capabilities(mid))
    return p.ModelInfo(
        id=mid,
        name=entry.name or mid,
        group=entry.group or infer_group(mid),
        capabilities=list(entry.capabilities) if entry.capabilities is not None else infer_capabilities(mid),
    )


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
