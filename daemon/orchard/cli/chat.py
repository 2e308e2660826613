"""`orchard chat`, `orchard provider check|detect`, `orchard model fetch`: talking to the models.

`chat` streams the answer to the terminal as it arrives (reasoning dimmed on
stderr, the answer on stdout) and ends with one line of usage and timings.
Ctrl-C cancels the answer cleanly and keeps what arrived; a second Ctrl-C
leaves at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from orchard.cli import output
from orchard.cli.client import Client
from orchard.cli.providers import resolve


def cmd_chat(client: Client, args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.message == "-" else args.message
    if not text.strip():
        output.error("The message is empty.", 'Give it as an argument, or "-" to read it from stdin.')
        return 2
    params: dict[str, Any] = {"message": text}
    if args.continue_ is not None:
        chat_id = args.continue_ or _last_chat(client)
        if chat_id is None:
            output.error("There is no chat to continue yet.", 'Start one with `orchard chat "..."`.')
            return 2
        params["chatId"] = chat_id
    if args.provider:
        params["providerId"] = resolve(client, args.provider)["id"]
    if args.model:
        params["model"] = args.model
    if args.system:
        params["system"] = args.system
    sampling = {k: v for k, v in (("temperature", args.temperature), ("maxTokens", args.max_tokens)) if v is not None}
    if sampling:
        params["params"] = sampling

    dim = sys.stderr.isatty()
    state = {"reasoning": False}
    # With --json, stdout carries only the JSON result; the answer streams to stderr.
    out = sys.stderr if args.json else sys.stdout

    def on_notification(method: str, note: Any) -> None:
        if method != "chat/delta":
            return
        if note.get("reasoning"):
            if not state["reasoning"]:
                sys.stderr.write("\033[2m" if dim else "")
                state["reasoning"] = True
            sys.stderr.write(note["reasoning"])
            sys.stderr.flush()
        if note.get("text"):
            if state["reasoning"]:
                sys.stderr.write("\033[0m\n" if dim else "\n")
                sys.stderr.flush()
                state["reasoning"] = False
            out.write(note["text"])
            out.flush()

    req_id = client.start_request("chat/send", params)
    try:
        result = client.wait(req_id, on_notification)
    except KeyboardInterrupt:
        client.cancel(req_id)  # the daemon stops the upstream request and answers with what arrived
        result = client.wait(req_id, on_notification)
    if state["reasoning"] and dim:
        sys.stderr.write("\033[0m")
    if result["text"] and not result["text"].endswith("\n"):
        out.write("\n")
    out.flush()
    if args.json:
        output.print_json(result)
    else:
        print(_stats(result), file=sys.stderr)
    if result["status"] == "error":
        err = result["error"] or {}
        output.error(err.get("message", "the provider failed"), err.get("hint"))
        return 1
    return 130 if result["status"] == "cancelled" else 0


def _last_chat(client: Client) -> str | None:
    chats = client.request("chat/list", {"limit": 1})["chats"]
    return chats[0]["id"] if chats else None


def _stats(result: dict[str, Any]) -> str:
    t = result["timings"]
    parts = [f"{result['model']} via {result['providerId']}", f"chat {result['chatId']}"]
    usage = result["usage"]
    if usage and usage.get("outputTokens") is not None:
        parts.append(f"{usage.get('inputTokens')} in / {usage['outputTokens']} out tokens")
    else:
        parts.append("no usage reported")
    parts.append(f"{t['totalMs'] / 1000:.1f} s")
    if t["firstTokenMs"] is not None:
        parts.append(f"first token {t['firstTokenMs']} ms")
    if t["tokensPerSecond"] is not None:
        parts.append(f"{t['tokensPerSecond']} tok/s" + (" (estimated)" if t["estimated"] else ""))
    if result["status"] == "cancelled":
        parts.append("cancelled")
    return "[" + " · ".join(parts) + "]"


def cmd_check(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    params: dict[str, Any] = {"providerId": pr["id"]}
    if args.model:
        params["model"] = args.model
    result = client.request("provider/check", params)
    if args.json:
        output.print_json(result)
        return 0 if result["ok"] else 1
    what = f"model {result['model']}" if result["model"] else "model list"
    if result["ok"]:
        print(f"✓ {pr['name']} answers ({what}) in {result['latencyMs']} ms.")
    else:
        err = result["error"] or {}
        print(f"✗ {pr['name']} failed the check ({what}): {err.get('message', '')}")
        if err.get("hint"):
            print(f"  {err['hint']}")
    if len(result["keys"]) > 1:
        for i, k in enumerate(result["keys"], start=1):
            state = f"ok, {k['latencyMs']} ms" if k["ok"] else f"failed: {(k['error'] or {}).get('kind')}"
            print(f"  key {i} {k['preview']}: {state}")
    return 0 if result["ok"] else 1


def cmd_fetch(client: Client, args: argparse.Namespace) -> int:
    pr = resolve(client, args.provider)
    result = client.request("model/fetch", {"providerId": pr["id"]})
    wanted = [m["id"] for m in result["models"]] if args.add_all else (args.add or [])
    if wanted:
        unknown = [i for i in wanted if i not in {m["id"] for m in result["models"]}]
        added = client.request("model/add", {"providerId": pr["id"], "ids": wanted})
        result["added"] = added["ids"]
        for m in result["models"]:
            m["added"] = m["added"] or m["id"] in added["ids"]
        if unknown:
            print(f"Note: {pr['id']} does not list {', '.join(unknown)}; added anyway.", file=sys.stderr)
    if args.json:
        output.print_json(result)
        return 0
    rows = [[m["id"], m["group"], ", ".join(m["capabilities"]), "added" if m["added"] else ""] for m in result["models"]]
    print(f"{pr['name']} offers {len(rows)} model{'s' if len(rows) != 1 else ''}:")
    print(output.table(rows, ["MODEL", "GROUP", "CAPABILITIES", ""]))
    if not wanted and any(not m["added"] for m in result["models"]):
        print(f"\nAdd some with `orchard model fetch {pr['id']} --add ID ...` or `orchard model add {pr['id']} ID`.")
    return 0


def cmd_detect(client: Client, args: argparse.Namespace) -> int:
    result = client.request("provider/detect")
    added = []
    if args.add:
        for server in result["servers"]:
            if server["providerId"]:
                continue
            r = client.request(
                "provider/add",
                {"name": server["name"], "type": "openai", "apiAddress": server["apiAddress"], "models": server["models"]},
            )
            server["providerId"] = r["provider"]["id"]
            added.append(r["provider"]["id"])
    if args.json:
        output.print_json(result)
        return 0
    if not result["servers"]:
        print("No local server answered on " + ", ".join(result["probed"]) + ".")
        return 0
    for s in result["servers"]:
        state = f"provider {s['providerId']}" + (" (added now)" if s["providerId"] in added else "") if s["providerId"] else "not added"
        print(f"{s['name']} at {s['apiAddress']}: {', '.join(s['models']) or 'no models'} — {state}")
    if not args.add and any(not s["providerId"] for s in result["servers"]):
        print("\nAdd them with `orchard provider detect --add`.")
    return 0
