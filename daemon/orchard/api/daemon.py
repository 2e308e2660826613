"""`daemon/*`: what the daemon is and how to stop it."""

from __future__ import annotations

import asyncio

from orchard.api.protocol import DaemonStatus, Empty, StopResult
from orchard.server.rpc import Context, Router

router = Router()


@router.method("daemon/status")
async def status(ctx: Context, params: Empty) -> DaemonStatus:
    """Version, pid, socket, config path and revision, clients, uptime, log path."""
    return ctx.daemon.status()


@router.method("daemon/stop")
async def stop(ctx: Context, params: Empty) -> StopResult:
    """Stop the daemon gracefully after answering; every client is disconnected."""
    # Answer first, then stop: the reply must reach the client that asked.
    asyncio.get_running_loop().call_later(0.05, ctx.daemon.request_stop)
    return StopResult(stopping=True)
