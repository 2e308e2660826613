"""`orchard connect`: a stdio ↔ socket bridge for editors that can only spawn a process.

Bytes are passed through untouched in both directions (frames need no
parsing here); the daemon is started in the background when none runs.
When the editor closes stdin the bridge half-closes the socket, so the
daemon drops this client and the bridge exits.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

from orchard.cli.client import Client


def run(socket_path: Path, config: Path | None) -> int:
    client = Client.connect(socket_path, start=True, config=config)
    sock = client._sock
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()

    def upstream() -> None:
        try:
            while chunk := os.read(stdin_fd, 65536):
                sock.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    threading.Thread(target=upstream, daemon=True, name="stdin→socket").start()
    try:
        while chunk := sock.recv(65536):
            view = memoryview(chunk)
            while view:
                view = view[os.write(stdout_fd, view) :]
    except (OSError, KeyboardInterrupt):
        pass
    finally:
        sock.close()
    return 0
