"""How the command line prints: aligned tables, JSON, and errors with what to do next."""

from __future__ import annotations

import sys
from typing import Any

import msgspec


def print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def error(message: str, hint: str | None = None) -> None:
    print(f"orchard: {message}", file=sys.stderr)
    if hint and hint not in message:
        print(f"  {hint}", file=sys.stderr)


def key_summary(api_key: dict[str, Any]) -> str:
    if api_key["source"] == "none":
        return "none"
    first = api_key["preview"] or api_key["source"]
    more = f" (+{api_key['count'] - 1})" if api_key["count"] > 1 else ""
    return f"{first}{more}"


def describe_provider(pr: dict[str, Any]) -> str:
    """A provider as a person reads it (no key values, ever: the daemon never sends them)."""
    lines = [
        f"{pr['name']}  ({pr['id']}, {pr['type']}, {'enabled' if pr['enabled'] else 'disabled'})",
        f"  API address  {pr['apiAddress'] or '(the type’s official address)'}",
    ]
    ends = pr.get("endpoints") or {}
    if ends.get("chat"):
        lines.append(f"  chat URL     {ends['chat']}")
    if ends.get("models"):
        lines.append(f"  models URL   {ends['models']}")
    lines.append(f"  API key      {key_summary(pr['apiKey'])}")
    if pr.get("apiVersion"):
        lines.append(f"  API version  {pr['apiVersion']}")
    for name in ("timeout", "connectTimeout", "proxy", "notes"):
        if pr.get(name) is not None:
            lines.append(f"  {name:<12} {pr[name]}")
    for k, v in (pr.get("headers") or {}).items():
        lines.append(f"  header       {k}: {v}")
    if pr["models"]:
        lines.append("  models:")
        for m in pr["models"]:
            name = f" “{m['name']}”" if m["name"] != m["id"] else ""
            caps = ", ".join(m["capabilities"])
            lines.append(f"    {m['id']}{name}  [{m['group']}] {caps}")
    else:
        lines.append("  models       none yet (add with `orchard model add` or `orchard model fetch`)")
    return "\n".join(lines)
