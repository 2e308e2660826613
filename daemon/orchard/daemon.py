"""The daemon's shared state: services, connected clients, and the fan-out between them.

One :class:`Daemon` per process. It owns the services (config, providers,
chats and their store), the set of connected clients and who follows which
chat, and turns service events into
notifications for every client. Transports (``orchard.server.listen``) add
and remove connections; handlers (``orchard.api``) reach the services through
``ctx.daemon``. Services never import the transport: they publish events here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from orchard import __version__, paths
from orchard.api import protocol as p
from orchard.chats.service import ChatService
from orchard.chats.store import Store
from orchard.config.providers import ProviderService
from orchard.config.service import ConfigChanged, ConfigFailed, ConfigService
from orchard.server.rpc import Connection, encode_notification

log = logging.getLogger(__name__)


def merge_deltas(a: p.ChatDelta, b: p.ChatDelta) -> p.ChatDelta | None:
    """Two waiting pieces of one answer as one (a slow client's backlog); `seq` is then the last piece's.

    Answer text and reasoning are never merged together.
    """
    if a.message_id != b.message_id or (a.text is None) != (b.text is None):
        return None
    return p.ChatDelta(
        chat_id=a.chat_id,
        message_id=a.message_id,
        seq=b.seq,
        text=None if a.text is None else a.text + (b.text or ""),
        reasoning=None if a.reasoning is None else a.reasoning + (b.reasoning or ""),
    )


class Daemon:
    def __init__(self, config_path: Path, *, socket_path: Path | None = None) -> None:
        self.started = time.monotonic()
        self.socket_path = socket_path
        self.log_path = paths.log_file()
        self.connections: set[Connection] = set()
        self.stopping = False
        self.stop_event = asyncio.Event()
        self.config = ConfigService(config_path, publish=self._on_config_event)
        self.providers = ProviderService(self.config)
        self.store = Store(paths.data_dir() / "orchard.db")
        self.chats = ChatService(self.providers, self.store, on_delta=self._on_delta, on_update=self._on_chat_update)
        #: chat id → the clients following it (chat/attach)
        self.followers: dict[str, set[Connection]] = {}
        # New settings take effect on the next request: that provider's client is rebuilt.
        self.config.on_change(
            lambda _config, changed: asyncio.get_running_loop().create_task(self.providers.pool.changed(changed))
        )

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Open the store (answers whose daemon is gone are marked interrupted) and load the config."""
        paths.ensure_private_dir(paths.data_dir())
        interrupted = self.store.open()
        if interrupted:
            log.warning("%d answer(s) were streaming when the daemon last stopped; their text is kept", interrupted)
        self.config.load()
        if self.config.problem is not None:
            log.warning("starting with an invalid config file: %s", self.config.problem.message)
        log.info("orchard %s started, pid %d, config %s", __version__, os.getpid(), self.config.path)

    async def run_background(self) -> None:
        """Background work that lives as long as the daemon: the config watch."""
        watcher_stop = asyncio.Event()
        watch = asyncio.create_task(self._watch(watcher_stop), name="config watch")
        try:
            await self.stop_event.wait()
        finally:
            watcher_stop.set()
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def _watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.config.watch(stop)
            except Exception:  # the watch must come back, whatever happened to the directory
                log.exception("config watch failed; restarting it in 1 s")
                await asyncio.sleep(1)

    def request_stop(self) -> None:
        if not self.stopping:
            log.info("stopping")
        self.stopping = True
        self.stop_event.set()

    async def close(self) -> None:
        """Disconnect every client, let cancelled answers be stored, close the pool and the store."""
        tasks = [a.task for a in self.chats.live.values() if a.task is not None]
        await asyncio.gather(*(c.close() for c in list(self.connections)), return_exceptions=True)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await self.providers.pool.aclose()
        self.store.close()

    # -- clients -----------------------------------------------------------------------

    def add(self, connection: Connection) -> None:
        self.connections.add(connection)
        connection.on_close.append(self._remove)
        log.info("%s connected (%d clients)", connection.name, len(self.connections))

    def _remove(self, connection: Connection) -> None:
        self.connections.discard(connection)
        for followers in self.followers.values():
            followers.discard(connection)
        log.info("%s disconnected (%d clients)", connection.name, len(self.connections))

    def broadcast(self, method: str, params: object) -> None:
        """Send a notification to every client (encoded once)."""
        body = encode_notification(method, params)
        for connection in list(self.connections):
            connection.send_encoded(body)

    def status(self) -> p.DaemonStatus:
        problem = self.config.problem
        return p.DaemonStatus(
            version=__version__,
            pid=os.getpid(),
            socket_path=str(self.socket_path) if self.socket_path else None,
            config_path=str(self.config.path),
            log_path=str(self.log_path),
            data_path=str(paths.data_dir()),
            revision=self.config.revision,
            clients=len(self.connections),
            uptime_seconds=round(time.monotonic() - self.started, 3),
            config_problem=None
            if problem is None
            else p.ConfigProblem(
                path=str(problem.data.get("path", self.config.path)),
                line=int(problem.data.get("line", 1)),
                column=int(problem.data.get("column", 1)),
                message=problem.message,
            ),
        )

    # -- following chats -------------------------------------------------------------------

    async def attach(self, connection: Connection, chat_id: str, from_seq: int) -> p.ChatDetail:
        detail = await self.chats.get(chat_id)
        # No await from here on: no delta can slip between the replay and the follow.
        for delta in self.chats.replay(chat_id, from_seq):
            connection.notify("chat/delta", delta)
        self.followers.setdefault(chat_id, set()).add(connection)
        return detail

    def detach(self, connection: Connection, chat_id: str) -> None:
        followers = self.followers.get(chat_id)
        if followers is not None:
            followers.discard(connection)
            if not followers:
                del self.followers[chat_id]

    def _on_delta(self, delta: p.ChatDelta, origin: object) -> None:
        targets = set(self.followers.get(delta.chat_id, ()))
        if isinstance(origin, Connection):
            targets.add(origin)
        size = 160 + len(delta.text or "") + len(delta.reasoning or "")
        for connection in targets:
            connection.notify_merging("chat/delta", delta, merge_deltas, size)

    def _on_chat_update(self, chat_id: str, change: str) -> None:
        if change == "deleted":
            self.followers.pop(chat_id, None)
        self.broadcast("chat/didUpdate", p.ChatDidUpdate(chat_id=chat_id, change=change))

    # -- events --------------------------------------------------------------------------

    def _on_config_event(self, event: ConfigChanged | ConfigFailed) -> None:
        if isinstance(event, ConfigChanged):
            self.broadcast(
                "config/didChange",
                p.ConfigDidChange(revision=event.revision, source=event.source, providers=event.providers),
            )
        else:
            self.broadcast(
                "config/didFail",
                p.ConfigDidFail(path=event.path, line=event.line, column=event.column, message=event.message),
            )
