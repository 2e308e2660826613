"""`orchard`: the command line. Parses arguments and hands each command to its module.

Every command but ``serve``, ``connect`` and ``config`` is a client of the
daemon and starts it in the background when none is running.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from orchard import __version__, paths

PROVIDER_TYPES = ("openai", "anthropic", "gemini", "azure-openai")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchard",
        description="Orchard: one daemon that owns your AI providers and chats.",
    )
    parser.add_argument("--version", action="version", version=f"orchard {__version__}")
    # Global options work before or after the command: `orchard --config X status`, `orchard status --config X`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS,
        help="config file (default: $ORCHARD_CONFIG or the user config dir)",
    )
    common.add_argument(
        "--socket", type=Path, default=argparse.SUPPRESS,
        help="daemon socket (default: $ORCHARD_SOCKET or the user runtime dir)",
    )
    for action in common._actions:
        parser._add_action(action)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(parent, name: str, help: str, json: bool = False):
        p = parent.add_parser(name, help=help, description=help, parents=[common])
        if json:
            p.add_argument("--json", action="store_true", help="print JSON")
        return p

    serve = command(sub, "serve", "run the daemon in the foreground")
    serve.add_argument("--stdio", action="store_true", help="serve one client over stdin/stdout")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    command(sub, "connect", "bridge stdin/stdout to the shared daemon (starting it if needed)")
    command(sub, "status", "is the daemon running, and where are its files", json=True)
    command(sub, "stop", "stop the daemon gracefully")

    provider = command(sub, "provider", "manage providers").add_subparsers(dest="action", metavar="ACTION")
    provider.required = True
    command(provider, "list", "list providers", json=True)
    p = command(provider, "show", "show one provider", json=True)
    p.add_argument("provider", help="provider id or name")
    p = command(provider, "add", "add a provider", json=True)
    p.add_argument("name", help="a name, e.g. vLLM; its id is made from it (vllm)")
    p.add_argument("--type", required=True, choices=PROVIDER_TYPES)
    p.add_argument("--url", "--address", dest="url", help="API address, e.g. http://localhost:8000/")
    p.add_argument("--key", metavar="REF", help="an env:NAME or cmd:COMMAND key reference (type a key with set-key)")
    p.add_argument("--api-version", help="Azure OpenAI api-version")
    p.add_argument("--model", action="append", help="a model id to add (repeatable)")
    p.add_argument("--id", help="choose the id instead of deriving it from the name")
    p.add_argument("--disabled", action="store_true", help="add it switched off")
    p = command(provider, "update", "change a provider's settings (an empty value clears one)", json=True)
    p.add_argument("provider", help="provider id or name")
    p.add_argument("--name")
    p.add_argument("--type", choices=PROVIDER_TYPES)
    p.add_argument("--url", "--address", dest="url", help="API address")
    p.add_argument("--api-version")
    p.add_argument("--timeout", type=float, help="idle timeout, seconds")
    p.add_argument("--connect-timeout", type=float, help="connect timeout, seconds")
    p.add_argument("--proxy", help="proxy URL for this provider")
    p.add_argument("--notes")
    p.add_argument("--header", action="append", metavar="NAME=VALUE", help="extra header (NAME= removes it)")
    for name, help_text in (("enable", "switch a provider on"), ("disable", "switch a provider off")):
        p = command(provider, name, help_text, json=True)
        p.add_argument("provider", help="provider id or name")
    p = command(provider, "remove", "remove a provider", json=True)
    p.add_argument("provider", help="provider id or name")
    p = command(provider, "check", "check the API key and address with a tiny request", json=True)
    p.add_argument("provider", help="provider id or name")
    p.add_argument("--model", help="the model to check with (default: its first model)")
    p = command(provider, "detect", "find local OpenAI-compatible servers (vLLM, llama.cpp, Ollama, LM Studio)", json=True)
    p.add_argument("--add", action="store_true", help="add each one found as a provider, with its models")
    p = command(provider, "set-key", "set the API key from a hidden prompt or stdin", json=True)
    p.add_argument("provider", help="provider id or name")
    p.add_argument("reference", nargs="?", help="env:NAME or cmd:COMMAND instead of typing a key")

    model = command(sub, "model", "manage a provider's models").add_subparsers(dest="action", metavar="ACTION")
    model.required = True
    p = command(model, "add", "add model ids to a provider", json=True)
    p.add_argument("provider", help="provider id or name")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = command(model, "fetch", "list the models the provider offers", json=True)
    p.add_argument("provider", help="provider id or name")
    p.add_argument("--add", nargs="+", metavar="ID", help="add these of them")
    p.add_argument("--add-all", action="store_true", help="add every one")
    p = command(model, "remove", "remove model ids from a provider", json=True)
    p.add_argument("provider", help="provider id or name")
    p.add_argument("ids", nargs="+", metavar="ID")
    p = command(model, "update", "set a model's name, group or capabilities", json=True)
    p.add_argument("provider", help="provider id or name")
    p.add_argument("id")
    p.add_argument("--name")
    p.add_argument("--group")
    p.add_argument("--capability", action="append", help="repeatable; give '' to go back to inferred")

    p = command(sub, "chat", "send a message and stream the answer", json=True)
    p.add_argument("message", nargs="?", help='the message; "-" reads it from stdin')
    p.add_argument(
        "-c", "--continue", dest="continue_", nargs="?", const="", metavar="CHAT_ID",
        help="continue a chat (the last one when no id is given); the model sees the history",
    )
    p.add_argument("-p", "--provider", help="provider id or name (default: default_model, else the first ready one)")
    p.add_argument("-m", "--model", help="model id (default: the provider's first model)")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--temperature", type=float)
    p.add_argument("--max-tokens", type=int)

    history = command(sub, "history", "your chats").add_subparsers(dest="action", metavar="ACTION")
    history.required = True
    p = command(history, "list", "chats, newest first", json=True)
    p.add_argument("--limit", type=int, default=20)
    p = command(history, "show", "one chat with its messages (the last chat when no id)", json=True)
    p.add_argument("chat_id", nargs="?")
    p = command(history, "search", "chats whose messages contain all these words", json=True)
    p.add_argument("words", nargs="+")
    p.add_argument("--limit", type=int, default=20)
    p = command(history, "delete", "delete chats", json=True)
    p.add_argument("chat_ids", nargs="+", metavar="CHAT_ID")
    p = command(history, "usage", "token usage per provider, model and chat", json=True)
    p.add_argument("--days", type=float, help="only the last N days")
    p.add_argument("--provider", help="only this provider")

    config = command(sub, "config", "the config file").add_subparsers(dest="action", metavar="ACTION")
    config.required = True
    command(config, "path", "print the config file's path")
    command(config, "edit", "open the config in $EDITOR, then check it")
    p = command(config, "validate", "check a config file with the daemon's own messages")
    p.add_argument("file", nargs="?", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "chat" and args.message is None:
        # `orchard chat --continue "message"`: the one value is the message, not a chat id.
        if not args.continue_ or re.fullmatch(r"chat_[0-9a-f]{12}", args.continue_):
            parser.error('chat needs a message (or "-" to read it from stdin)')
        args.message, args.continue_ = args.continue_, ""
    args.config = getattr(args, "config", None)
    args.socket = getattr(args, "socket", None)
    if args.config is not None:
        # Children (a daemon started for us) see the same file.
        os.environ["ORCHARD_CONFIG"] = str(args.config.resolve())
    if args.socket is not None:
        os.environ["ORCHARD_SOCKET"] = str(args.socket.resolve())
    config_path = paths.config_file()
    socket_path = paths.socket_path()

    from orchard.cli import output
    from orchard.cli.client import DaemonUnavailable, RpcError

    try:
        return _run(args, config_path, socket_path)
    except RpcError as exc:
        output.error(exc.message, exc.hint)
        return 1
    except DaemonUnavailable as exc:
        output.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _run(args: argparse.Namespace, config_path: Path, socket_path: Path) -> int:
    if args.command == "serve":
        from orchard.cli import serve

        return serve.run(stdio=args.stdio, socket_path=socket_path, config_path=config_path, log_level=args.log_level)
    if args.command == "connect":
        from orchard.cli import connect

        return connect.run(socket_path, config_path)
    if args.command == "status":
        from orchard.cli import daemon_cmd

        return daemon_cmd.status(socket_path, as_json=args.json)
    if args.command == "stop":
        from orchard.cli import daemon_cmd

        return daemon_cmd.stop(socket_path)
    if args.command == "config":
        from orchard.cli import config_cmd

        if args.action == "path":
            print(config_path)
            return 0
        if args.action == "edit":
            return config_cmd.edit(config_path)
        return config_cmd.validate(args.file or config_path)

    from orchard.cli import chat, history, providers
    from orchard.cli.client import Client

    with Client.connect(socket_path, start=True, config=config_path) as client:
        if args.command == "chat":
            return chat.cmd_chat(client, args)
        if args.command == "history":
            return {
                "list": history.cmd_list,
                "show": history.cmd_show,
                "search": history.cmd_search,
                "delete": history.cmd_delete,
                "usage": history.cmd_usage,
            }[args.action](client, args)
        if args.command == "provider":
            if args.action in ("enable", "disable"):
                return providers.cmd_enable(client, args, args.action == "enable")
            handler = {
                "list": providers.cmd_list,
                "show": providers.cmd_show,
                "add": providers.cmd_add,
                "update": providers.cmd_update,
                "remove": providers.cmd_remove,
                "set-key": providers.cmd_set_key,
                "check": chat.cmd_check,
                "detect": chat.cmd_detect,
            }[args.action]
            return handler(client, args)
        if args.command == "model":
            handler = {
                "add": providers.cmd_model_add,
                "remove": providers.cmd_model_remove,
                "update": providers.cmd_model_update,
                "fetch": chat.cmd_fetch,
            }[args.action]
            return handler(client, args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
