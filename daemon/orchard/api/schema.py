"""The protocol's JSON Schema, generated from the router and its Structs.

``schema/protocol.schema.json`` lists every method (its params and result)
and every notification, with the shared types under ``$defs``. It is built
from the same Structs the daemon decodes with, so it cannot disagree with
the daemon; ``scripts/gen-schema --check`` fails when the checked-in copy
has drifted.
"""

from __future__ import annotations

from typing import Any

import msgspec

from orchard import __version__
from orchard.server.rpc import Router


def protocol_schema(router: Router) -> dict[str, Any]:
    routes = sorted(router.routes.values(), key=lambda r: r.name)
    notes = sorted(router.notifications.items())
    types = [r.params for r in routes] + [r.result for r in routes] + [t for _, t in notes]
    refs, defs = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    n = len(routes)
    methods = {
        r.name: {"description": r.doc, "params": refs[i], "result": refs[n + i]} for i, r in enumerate(routes)
    }
    notifications = {name: {"params": refs[2 * n + i]} for i, (name, _) in enumerate(notes)}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Orchard protocol",
        "description": (
            f"JSON-RPC 2.0 methods and notifications of the Orchard daemon {__version__}, "
            "framed with LSP-style Content-Length headers. Field names are camelCase."
        ),
        "methods": methods,
        "notifications": notifications,
        "$defs": defs,
    }
