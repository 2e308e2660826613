"""Transports: the per-user Unix socket that every client shares, and stdio.

``serve_socket`` makes sure exactly one daemon serves a socket path: it holds
an exclusive ``flock`` on ``<socket>.lock`` (which records its pid) for its
whole life, so a second daemon fails at once and can say which pid is
serving, and a socket file left by a crashed daemon is known to be stale and
replaced. The socket is created 0600; Orchard's own directory for it is 0700,
and a directory the person chose must be theirs (or sticky, like /tmp).

``serve_stdio`` serves one client over stdin/stdout, for editors that spawn
the daemon themselves; it ends when stdin closes.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import stat
import sys
import threading
from pathlib import Path

from orchard import paths
from orchard.daemon import Daemon
from orchard.server.rpc import Connection, Router

log = logging.getLogger(__name__)

_READ_LIMIT = 1 << 16


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None, socket_path: Path) -> None:
        self.pid = pid
        self.socket_path = socket_path
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"An Orchard daemon ({who}) is already serving {socket_path}. "
            "Use it (`orchard status`), or stop it first with `orchard stop`."
        )


def _prepare_directory(directory: Path) -> None:
    """Orchard's own socket directory is made 0700; one the person chose is checked, not changed.

    A chosen directory (ORCHARD_SOCKET=/tmp/x.sock) must not let another user
    replace the socket: it must be ours, or sticky like /tmp.
    """
    if directory == paths.runtime_dir() or not directory.exists():
        paths.ensure_private_dir(directory)
        return
    st = directory.stat()
    if st.st_uid != os.getuid() and not st.st_mode & stat.S_ISVTX:
        raise PermissionError(
            f"{directory} belongs to another user who could replace the socket; "
            "choose another place with ORCHARD_SOCKET or --socket"
        )


def acquire_lock(socket_path: Path) -> int:
    """Take the daemon lock for ``socket_path``; return its fd (kept open while serving)."""
    lock = paths.lock_file(socket_path)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            pid = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
        except ValueError:
            pid = None
        os.close(fd)
        raise AlreadyRunning(pid, socket_path) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


async def serve_socket(daemon: Daemon, router: Router, socket_path: Path) -> None:
    _prepare_directory(socket_path.parent)
    lock_fd = acquire_lock(socket_path)
    try:
        daemon.start()  # only now: a daemon refused above must not touch the store
        # We hold the lock, so any socket file here was left by a daemon that died.
        try:
            socket_path.unlink()
            log.info("replaced a stale socket file at %s", socket_path)
        except FileNotFoundError:
            pass

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connection = Connection(reader, writer, router, daemon, name="socket")
            daemon.add(connection)
            await connection.serve()

        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            server = await asyncio.start_unix_server(on_client, path=str(socket_path), limit=_READ_LIMIT)
        finally:
            os.umask(old_umask)
        os.chmod(socket_path, 0o600)
        log.info("listening on %s", socket_path)
        _on_signals(daemon)
        async with server:
            await daemon.run_background()
            server.close()
            await daemon.close()
    finally:
        try:
            socket_path.unlink()
        except FileNotFoundError:
            pass
        os.close(lock_fd)  # releases the flock


async def serve_stdio(daemon: Daemon, router: Router) -> None:
    daemon.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_READ_LIMIT)
    # Our replies must be the only thing on stdout; nothing else may print there.
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    except ValueError:  # a regular file: asyncio pipes need pipes, sockets or ttys
        _feed_from_thread(sys.stdin.fileno(), reader, loop)
    writer: asyncio.StreamWriter | _BlockingWriter
    try:
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdout)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    except ValueError:
        writer = _BlockingWriter(stdout)
    connection = Connection(reader, writer, router, daemon, name="stdio")
    daemon.add(connection)
    _on_signals(daemon)
    background = asyncio.create_task(daemon.run_background())
    serving = asyncio.create_task(connection.serve())
    await asyncio.wait({serving, background}, return_when=asyncio.FIRST_COMPLETED)
    daemon.request_stop()
    await asyncio.gather(serving, background, return_exceptions=True)
    await daemon.close()


def _feed_from_thread(fd: int, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
    def pump() -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                loop.call_soon_threadsafe(reader.feed_eof)
                return
            loop.call_soon_threadsafe(reader.feed_data, chunk)

    threading.Thread(target=pump, name="stdin", daemon=True).start()


class _BlockingWriter:
    """Stands in for a StreamWriter when stdout is a regular file (writes never block long)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    async def drain(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()


def _on_signals(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            loop.add_signal_handler(sig, daemon.request_stop)
        except (NotImplementedError, RuntimeError):
            pass
