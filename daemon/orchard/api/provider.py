"""`provider/*`: list, add, update and remove providers."""

from __future__ import annotations

from orchard.api.protocol import (
    CheckResult,
    DetectResult,
    ProviderCheck,
    ConfigDidChange,
    ConfigDidFail,
    Empty,
    ProviderAdd,
    ProviderId,
    ProviderList,
    ProviderRemove,
    ProviderResult,
    ProviderUpdate,
    Removed,
)
from orchard.server.rpc import Context, Router

router = Router()
router.notification("config/didChange", ConfigDidChange)
router.notification("config/didFail", ConfigDidFail)


@router.method("provider/list")
async def provider_list(ctx: Context, params: Empty) -> ProviderList:
    """Every provider, with its models, key source (never the key) and endpoints."""
    return ctx.daemon.providers.list()


@router.method("provider/get")
async def provider_get(ctx: Context, params: ProviderId) -> ProviderResult:
    """One provider by id."""
    return ctx.daemon.providers.get(params.id)


@router.method("provider/add")
async def provider_add(ctx: Context, params: ProviderAdd) -> ProviderResult:
    """Add a provider; its id is a slug of its name, made unique."""
    return await ctx.daemon.providers.add(params)


@router.method("provider/update")
async def provider_update(ctx: Context, params: ProviderUpdate) -> ProviderResult:
    """Change some of a provider's settings; `null` clears one."""
    return await ctx.daemon.providers.update(params)


@router.method("provider/remove")
async def provider_remove(ctx: Context, params: ProviderRemove) -> Removed:
    """Remove a provider and its models from the config."""
    return await ctx.daemon.providers.remove(params)


@router.method("provider/check")
async def provider_check(ctx: Context, params: ProviderCheck) -> CheckResult:
    """Check the API key and address with a tiny streaming chat (or a model list when there is no model)."""
    return await ctx.daemon.providers.check(params)


@router.method("provider/detect")
async def provider_detect(ctx: Context, params: Empty) -> DetectResult:
    """Local OpenAI-compatible servers (vLLM, llama.cpp, Ollama, LM Studio) answering on 127.0.0.1."""
    return await ctx.daemon.providers.detect()
