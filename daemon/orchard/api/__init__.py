"""The protocol's handlers: one module per method namespace.

Each handler decodes its params (the router does that from its annotation),
calls one service, and returns the result Struct. :data:`router` holds them
all, with the notification types, and is the source of the protocol schema.
"""

from __future__ import annotations

from orchard.server.rpc import Router


def build_router() -> Router:
    from orchard.api import chat, daemon, model, provider

    router = Router()
    for module in (daemon, provider, model, chat):
        router.include(module.router)
    return router
