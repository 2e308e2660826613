"""The command line's connection to the daemon: a small blocking JSON-RPC client.

Finds the daemon's socket, starts the daemon in the background when none is
running (so ``orchard provider list`` just works), and sends requests while
passing notifications that arrive meanwhile to a callback. Imports nothing
heavy: the command line must start fast.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from orchard import paths
from orchard.server import framing

#: `orchard serve` exits with this when another daemon already serves the socket.
EXIT_ALREADY_RUNNING = 3
START_TIMEOUT = 15.0


class RpcError(Exception):
    """An error answer from the daemon, with its JSON-RPC code and data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data if isinstance(data, dict) else {}

    @property
    def hint(self) -> str | None:
        return self.data.get("hint")


class DaemonUnavailable(Exception):
    pass


Notification = Callable[[str, Any], None]


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._rfile = sock.makefile("rb")
        self._ids = itertools.count(1)

    @classmethod
    def connect(cls, socket_path: Path, *, start: bool = True, config: Path | None = None) -> Client:
        """Connect to the daemon at ``socket_path``, starting one if ``start`` and none answers."""
        try:
            return cls(_dial(socket_path))
        except OSError:
            if not start:
                raise DaemonUnavailable(f"No Orchard daemon is running at {socket_path}.") from None
        start_daemon(socket_path, config)
        return cls(_dial(socket_path))

    def close(self) -> None:
        try:
            self._rfile.close()
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: dict[str, Any]) -> None:
        self._sock.sendall(framing.encode(msgspec.json.encode(message)))

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def start_request(self, method: str, params: Any = None) -> int:
        req_id = next(self._ids)
        self.send({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}})
        return req_id

    def cancel(self, req_id: int) -> None:
        self.notify("$/cancelRequest", {"id": req_id})

    def wait(self, req_id: int, on_notification: Notification | None = None) -> Any:
        """Read until the answer to ``req_id``; notifications go to ``on_notification``."""
        while True:
            body = framing.read_frame_sync(self._rfile)
            if body is None:
                raise DaemonUnavailable("The daemon closed the connection (it may have stopped).")
            msg = msgspec.json.decode(body)
            if "method" in msg and "id" not in msg:
                if on_notification is not None:
                    on_notification(msg["method"], msg.get("params"))
                continue
            if msg.get("id") != req_id:
                continue
            if "error" in msg:
                err = msg["error"]
                raise RpcError(err.get("code", 0), err.get("message", "error"), err.get("data"))
            return msg.get("result")

    def request(self, method: str, params: Any = None, on_notification: Notification | None = None) -> Any:
        return self.wait(self.start_request(method, params), on_notification)


def _dial(socket_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(socket_path))
    except OSError:
        sock.close()
        raise
    return sock


def start_daemon(socket_path: Path, config: Path | None = None) -> None:
    """Start ``orchard serve`` in the background and wait until its socket answers.

    Several processes may do this at the same instant: every daemon but one
    finds the lock taken and exits, and every caller connects to the winner.
    """
    state = paths.state_dir()
    paths.ensure_private_dir(state)
    err_path = state / "daemon.stderr"
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    cmd = [sys.executable, "-m", "orchard", "--socket", str(socket_path)]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd.append("serve")
    with os.fdopen(fd, "wb") as err:
        child = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # outlives this command, and Ctrl-C here does not reach it
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            _dial(socket_path).close()
            return
        except OSError:
            pass
        code = child.poll()
        if code not in (None, 0, EXIT_ALREADY_RUNNING):
            detail = err_path.read_text(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit status {code}"
            raise DaemonUnavailable(f"The Orchard daemon failed to start: {reason}")
        time.sleep(0.02)
    raise DaemonUnavailable(
        f"The Orchard daemon did not answer at {socket_path} within {START_TIMEOUT:.0f} s; "
        f"see {err_path} and {paths.log_file()}."
    )
