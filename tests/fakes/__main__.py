"""``python -m tests.fakes``: one fake provider as a process, for the demo and
for tests that need the fake outside their own process.

    python -m tests.fakes --type openai --port 0 --model gpt2 --key sk-test \
        --set chunk_delay=0.05 --set reasoning=true

Prints ``READY http://127.0.0.1:PORT`` on stdout once it listens, then runs
until SIGTERM or SIGINT and exits 0. ``--set NAME=VALUE`` takes JSON values
(a bare word is a string); switches can also be changed while it runs with
``POST /_fake/config`` (see ``control.py``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from .server import FAKE_TYPES, FakeProvider
from .switches import SwitchError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes",
        description="Run one fake AI provider on 127.0.0.1 until SIGTERM or SIGINT; "
                    "prints 'READY <url>' once it listens.")
    parser.add_argument("--type", choices=FAKE_TYPES, default="openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", action="append", default=[], metavar="ID",
                        help="a model (Azure: deployment) to serve; repeat for more")
    parser.add_argument("--key", action="append", default=[], metavar="KEY",
                        help="a key the fake accepts; repeat for more (default: any or none)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a switch, VALUE as JSON, e.g. --set status=429 --set reply='\"hi\"'")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    return parser.parse_args(argv)


def switches_from(args: argparse.Namespace) -> dict[str, Any]:
    switches: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise SwitchError(f"--set wants NAME=VALUE, got {item!r}")
        try:
            switches[name] = json.loads(value)
        except ValueError:
            switches[name] = value
    if args.model:
        switches["models"] = args.model
    if args.key:
        switches["accepted_keys"] = args.key
    return switches


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        fake = FakeProvider(args.type, host=args.host, port=args.port, verbose=args.verbose,
                            **switches_from(args))
    except SwitchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with fake:
        print(f"READY {fake.url}", flush=True)
        # A timed wait, so the signal handler gets to run promptly.
        while not done.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
