"""`orchard provider ...` and `orchard model ...`: provider management through the daemon."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from orchard.cli import output
from orchard.cli.client import Client, RpcError


def resolve(client: Client, ref: str) -> dict[str, Any]:
    """A provider by id, or by name (case-insensitive) as people type it."""
    providers = client.request("provider/list")["providers"]
    for pr in providers:
        if pr["id"] == ref:
            return pr
    matches = [pr for pr in providers if pr["name"].casefold() == ref.casefold()]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{pr['name']} ({pr['id']})" for pr in providers) or "none yet"
    raise RpcError(
        -32004,
        f"There is no provider `{ref}` (providers: {known}).",
        {"hint": "Use an id or a name from `orchard provider list`, or add one with `orchard provider add`."},
    )


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    result = client.request("provider/list")
    if args.json:
        output.print_json(result)
        return 0
    if not result["providers"]:
        print("No providers yet. Add one, e.g.:")
        print("  orchard provider add vLLM --type openai --url http://localhost:8000/")
        return 0
    rows = [
        [
            pr["id"],
            pr["name"],
            pr["type"],
            "on" if pr["enabled"] else "off",
            output.key_summary(pr["apiKey"]),
            pr["apiAddress"] or "(official)",
            ", ".join(m["id"] for m in pr["models"]) or "-",
        ]
        for pr in result["providers"]
    ]
    print(output.table(rows, ["ID", "NAME", "TYPE", "ON", "API KEY", "API ADDRESS", "MODELS"]))
    if result.get("defaultModel"):
        print(f"\ndefault model: {result['defaultModel']}")
    return 0


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    if args.json:
        output.print_json(pr)
    else:
        print(output.describe_provider(pr))
    return 0


def _key_reference(value: str) -> str:
    if not value.startswith(("env:", "cmd:")):
        raise RpcError(
            -32602,
            "An API key is never taken from the command line (shell history keeps it).",
            {"hint": "Give `env:NAME` or `cmd:COMMAND`, or run `orchard provider set-key PROVIDER` to type it."},
        )
    return value


def cmd_add(client: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"name": args.name, "type": args.type}
    if args.url is not None:
        params["apiAddress"] = args.url
    if args.key is not None:
        params["apiKey"] = _key_reference(args.key)
    if args.api_version:
        params["apiVersion"] = args.api_version
    if args.id:
        params["id"] = args.id
    if args.disabled:
        params["enabled"] = False
    if args.model:
        params["models"] = args.model
    result = client.request("provider/add", params)
    return _show_result(result, args, f"Added provider {result['provider']['name']} ({result['provider']['id']}).")


def cmd_update(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    params: dict[str, Any] = {"id": pr["id"]}
    for attr, field in (
        ("name", "name"), ("type", "type"), ("url", "apiAddress"), ("api_version", "apiVersion"),
        ("timeout", "timeout"), ("connect_timeout", "connectTimeout"), ("proxy", "proxy"), ("notes", "notes"),
    ):  # fmt: skip
        value = getattr(args, attr)
        if value is not None:
            params[field] = None if value == "" else value
    if args.header:
        headers = dict(pr.get("headers") or {})
        for item in args.header:
            name, sep, value = item.partition("=")
            if not sep:
                raise RpcError(-32602, f"--header needs NAME=VALUE, got `{item}`.", {})
            if value:
                headers[name.strip()] = value
            else:
                headers.pop(name.strip(), None)
        params["headers"] = headers
    if len(params) == 1:
        print("Nothing to change: give at least one option (see `orchard provider update --help`).")
        return 2
    result = client.request("provider/update", params)
    return _show_result(result, args, f"Updated provider {result['provider']['id']}.")


def cmd_enable(client: Client, args: argparse.Namespace, enabled: bool) -> int:
    pr = resolve(client, args.provider)
    result = client.request("provider/update", {"id": pr["id"], "enabled": enabled})
    return _show_result(result, args, f"Provider {pr['id']} is {'enabled' if enabled else 'disabled'}.")


def cmd_remove(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    result = client.request("provider/remove", {"id": pr["id"]})
    if args.json:
        output.print_json(result)
    else:
        print(f"Removed provider {pr['name']} ({pr['id']}).")
    return 0


def cmd_set_key(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    if args.reference:
        key = _key_reference(args.reference)
    elif sys.stdin.isatty():
        key = getpass.getpass(f"API key for {pr['name']} (hidden; empty for none; several: comma-separated): ")
    else:
        key = sys.stdin.read().strip()
    result = client.request("provider/update", {"id": pr["id"], "apiKey": key})
    info = result["provider"]["apiKey"]
    if info["source"] == "none":
        message = f"Cleared the API key of {pr['id']} (requests go without one)."
    else:
        message = f"Set the API key of {pr['id']}: {output.key_summary(info)}."
    return _show_result(result, args, message)


def cmd_model_add(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    result = client.request("model/add", {"providerId": pr["id"], "ids": args.ids})
    skipped = [i for i in args.ids if i not in result["ids"]]
    message = f"Added to {pr['id']}: {', '.join(result['ids']) or 'nothing'}."
    if skipped:
        message += f" Already there: {', '.join(skipped)}."
    return _show_result(result, args, message)


def cmd_model_remove(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    result = client.request("model/remove", {"providerId": pr["id"], "ids": args.ids})
    missing = [i for i in args.ids if i not in result["ids"]]
    message = f"Removed from {pr['id']}: {', '.join(result['ids']) or 'nothing'}."
    if missing:
        message += f" Not there: {', '.join(missing)}."
    return _show_result(result, args, message)


def cmd_model_update(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    params: dict[str, Any] = {"providerId": pr["id"], "id": args.id}
    if args.name is not None:
        params["name"] = args.name or None
    if args.group is not None:
        params["group"] = args.group or None
    if args.capability is not None:
        params["capabilities"] = [c for c in args.capability if c] or None
    result = client.request("model/update", params)
    return _show_result(result, args, f"Updated model {args.id} of {pr['id']}.")


def _show_result(result: dict[str, Any], args: argparse.Namespace, message: str) -> int:
    if getattr(args, "json", False):
        output.print_json(result)
    else:
        print(message)
        print(output.describe_provider(result["provider"]))
    return 0
