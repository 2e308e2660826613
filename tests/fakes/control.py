"""The ``/_fake/`` control endpoints, so a test or the demo can drive a fake
that runs in another process.

    GET    /_fake/config        -> {"type", "switches"}
    POST   /_fake/config        JSON {switch: value, ...} -> {"type", "switches"}; 400 names a bad switch
    POST   /_fake/reset         switches back to defaults, recordings cleared
    GET    /_fake/requests      -> {"requests": [...]}
    DELETE /_fake/requests      recordings cleared, switches kept
    GET    /_fake/disconnects   -> {"count", "disconnects": [...]}
           ?wait=S&count=N      long-poll: wait up to S seconds for the N-th disconnect

These requests are neither recorded nor subject to any switch.
"""

from __future__ import annotations

from typing import Any

from .state import FakeState
from .switches import SwitchError

__all__ = ["PREFIX", "handle_control"]

PREFIX = "/_fake/"


def handle_control(state: FakeState, method: str, path: str, query: dict[str, str],
                   body: Any) -> tuple[int, dict[str, Any]]:
    name = path[len(PREFIX):].rstrip("/")
    if (method, name) == ("GET", "config"):
        return 200, _config(state)
    if (method, name) == ("POST", "config"):
        if not isinstance(body, dict):
            return 400, {"error": "send a JSON object of switches, e.g. {\"status\": 429}"}
        try:
            state.configure(**body)
        except SwitchError as exc:
            return 400, {"error": str(exc)}
        return 200, _config(state)
    if (method, name) == ("POST", "reset"):
        state.reset()
        return 200, _config(state)
    if (method, name) == ("GET", "requests"):
        return 200, {"requests": state.requests()}
    if (method, name) == ("DELETE", "requests"):
        state.clear_records()
        return 200, {"requests": []}
    if (method, name) == ("GET", "disconnects"):
        try:
            wait = float(query.get("wait", 0))
            count = int(query.get("count", 1))
        except ValueError:
            return 400, {"error": "wait must be seconds and count a whole number"}
        if wait > 0:
            state.wait_for_disconnect(min(wait, 60.0), count)
        found = state.disconnects()
        return 200, {"count": len(found), "disconnects": found}
    return 404, {"error": f"no control endpoint {method} {path}; see tests/fakes/control.py"}


def _config(state: FakeState) -> dict[str, Any]:
    return {"type": state.type, "switches": state.switches().as_dict()}
