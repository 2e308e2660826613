"""`model/*`: add, rename and remove a provider's models."""

from __future__ import annotations

from orchard.api.protocol import (
    FetchResult,
    ModelAdd,
    ModelFetch,
    ModelRemove,
    ModelsChanged,
    ModelUpdate,
    ProviderResult,
)
from orchard.server.rpc import Context, Router

router = Router()


@router.method("model/add")
async def model_add(ctx: Context, params: ModelAdd) -> ModelsChanged:
    """Add model ids to a provider; ids already there are skipped."""
    return await ctx.daemon.providers.add_models(params)


@router.method("model/update")
async def model_update(ctx: Context, params: ModelUpdate) -> ProviderResult:
    """Set a model's display name, group or capabilities."""
    return await ctx.daemon.providers.update_model(params)


@router.method("model/remove")
async def model_remove(ctx: Context, params: ModelRemove) -> ModelsChanged:
    """Remove model ids from a provider; unknown ids are skipped."""
    return await ctx.daemon.providers.remove_models(params)


@router.method("model/fetch")
async def model_fetch(ctx: Context, params: ModelFetch) -> FetchResult:
    """The provider's own model list (all pages); add the ones you want with `model/add`."""
    return await ctx.daemon.providers.fetch_models(params)
