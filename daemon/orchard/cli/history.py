"""`orchard history list|show|search|delete|usage`: the chats the daemon keeps."""

from __future__ import annotations

import argparse
import time
from typing import Any

from orchard.cli import output
from orchard.cli.client import Client, RpcError


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _print_chats(chats: list[dict[str, Any]], empty: str) -> None:
    if not chats:
        print(empty)
        return
    rows = [
        [c["id"], _when(c["updatedAt"]), str(c["messageCount"]), f"{c['providerId']}/{c['model']}", c["title"]]
        for c in chats
    ]
    print(output.table(rows, ["CHAT", "UPDATED", "MSGS", "MODEL", "TITLE"]))


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    result = client.request("chat/list", {"limit": args.limit})
    if args.json:
        output.print_json(result)
    else:
        _print_chats(result["chats"], 'No chats yet. Start one with `orchard chat "..."`.')
    return 0


def cmd_search(client: Client, args: argparse.Namespace) -> int:
    result = client.request("chat/list", {"limit": args.limit, "query": " ".join(args.words)})
    if args.json:
        output.print_json(result)
    else:
        _print_chats(result["chats"], "No chat has all of those words.")
    return 0


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    chat_id = args.chat_id
    if not chat_id:
        chats = client.request("chat/list", {"limit": 1})["chats"]
        if not chats:
            print('No chats yet. Start one with `orchard chat "..."`.')
            return 0
        chat_id = chats[0]["id"]
    detail = client.request("chat/get", {"chatId": chat_id})
    if args.json:
        output.print_json(detail)
        return 0
    chat = detail["chat"]
    print(f"{chat['title']}  ({chat['id']}, {chat['providerId']}/{chat['model']}, {_when(chat['createdAt'])})")
    if detail["system"]:
        print(f"system: {detail['system']}")
    for m in detail["messages"]:
        who = "you" if m["role"] == "user" else f"{m['model'] or 'assistant'}"
        print(f"\n[{who}]")
        if m["reasoning"]:
            print(f"(reasoning) {m['reasoning']}")
        print(m["text"] or "(no text)")
        notes = []
        if m["role"] == "assistant":
            if m["status"] != "complete":
                notes.append(m["status"])
            if m["error"]:
                notes.append(m["error"]["message"])
            if m["usage"] and m["usage"].get("outputTokens") is not None:
                notes.append(f"{m['usage']['inputTokens']} in / {m['usage']['outputTokens']} out tokens")
        if notes:
            print(f"  ({'; '.join(notes)})")
    return 0


def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    failed = 0
    for chat_id in args.chat_ids:
        try:
            client.request("chat/delete", {"chatId": chat_id})
            print(f"Deleted {chat_id}.")
        except RpcError as exc:
            output.error(exc.message, exc.hint)
            failed += 1
    return 1 if failed else 0


def cmd_usage(client: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.days:
        params["since"] = time.time() - args.days * 86400
    if args.provider:
        params["providerId"] = args.provider
    result = client.request("usage/summary", params)
    if args.json:
        output.print_json(result)
        return 0
    t = result["total"]
    print(f"{t['messages']} answers: {t['inputTokens']} input and {t['outputTokens']} output tokens"
          + (f" ({t['unreported']} without usage from their provider)" if t["unreported"] else ""))  # fmt: skip
    rows = [[r["providerId"] or "-", r["model"] or "-", str(r["messages"]), str(r["inputTokens"]), str(r["outputTokens"])]
            for r in result["models"]]  # fmt: skip
    if rows:
        print()
        print(output.table(rows, ["PROVIDER", "MODEL", "ANSWERS", "INPUT", "OUTPUT"]))
    return 0
