"""`orchard serve`: run the daemon, on the shared socket or over stdio."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from orchard import paths
from orchard.cli.client import EXIT_ALREADY_RUNNING

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str) -> Path:
    """Log to the rotated daemon log (0600); never to stdout, which may be the protocol."""
    log_path = paths.log_file()
    paths.ensure_private_dir(log_path.parent)
    os.close(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    handler = logging.handlers.RotatingFileHandler(log_path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; URLs can carry Gemini keys (?key=).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    return log_path


def run(*, stdio: bool, socket_path: Path, config_path: Path, log_level: str) -> int:
    try:
        setup_logging(log_level)
    except OSError as exc:
        print(f"orchard: cannot write the daemon log: {exc}. Set ORCHARD_STATE to a directory of yours.", file=sys.stderr)
        return 1
    from orchard.api import build_router
    from orchard.daemon import Daemon
    from orchard.errors import OrchardError
    from orchard.server.listen import AlreadyRunning, serve_socket, serve_stdio

    async def main() -> None:
        daemon = Daemon(config_path, socket_path=None if stdio else socket_path)
        router = build_router()
        if stdio:
            await serve_stdio(daemon, router)
        else:
            await serve_socket(daemon, router, socket_path)

    try:
        asyncio.run(main())
    except AlreadyRunning as exc:
        print(f"orchard: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except OrchardError as exc:
        print(f"orchard: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"orchard: {exc}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    logging.getLogger("orchard").info("stopped")
    return 0
