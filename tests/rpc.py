"""A deliberately plain JSON-RPC client for tests: raw frames in, raw JSON out.

It shares no code with the daemon (its framing is written out here), so a
framing bug in the daemon cannot be hidden by the same bug in the client.
Tests that want a client none of us wrote use pygls' ``JsonRPCClient``
(see ``test_clients.py``) or pytest-lsp over stdio.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any


class RpcFailure(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.code = error.get("code")
        self.message = error.get("message", "")
        self.data = error.get("data") or {}


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future] = {}
        self.notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.unmatched: list[dict[str, Any]] = []  # responses with an id we never sent (must stay empty)
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read_loop())

    @classmethod
    async def open_unix(cls, path: Path) -> RawClient:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 24)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    # -- sending ------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False).encode()
        self.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def start(self, method: str, params: Any = None, *, omit_params: bool = False) -> tuple[int, asyncio.Future]:
        req_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id, "method": method}
        if not omit_params:
            message["params"] = {} if params is None else params
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        self.send(message)
        return req_id, fut

    async def message(self, method: str, params: Any = None, *, timeout: float = 20, **kw: Any) -> dict[str, Any]:
        """The whole response message (for assertions on the raw JSON)."""
        _, fut = self.start(method, params, **kw)
        return await asyncio.wait_for(fut, timeout)

    async def request(self, method: str, params: Any = None, *, timeout: float = 20, **kw: Any) -> Any:
        msg = await self.message(method, params, timeout=timeout, **kw)
        if "error" in msg:
            raise RpcFailure(msg["error"])
        return msg["result"]

    def cancel(self, req_id: int) -> None:
        self.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": req_id}})

    async def notification(self, method: str, *, timeout: float = 10) -> dict[str, Any]:
        """The next notification with this method (others are dropped)."""

        async def wait() -> dict[str, Any]:
            while True:
                msg = await self.notifications.get()
                if msg["method"] == method:
                    return msg["params"]

        return await asyncio.wait_for(wait(), timeout)

    def drain_notifications(self) -> list[dict[str, Any]]:
        out = []
        while not self.notifications.empty():
            out.append(self.notifications.get_nowait())
        return out

    # -- receiving ----------------------------------------------------------------

    async def read_frame(self) -> bytes | None:
        length = None
        while True:
            line = await self.reader.readline()
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        assert length is not None, "frame without Content-Length"
        return await self.reader.readexactly(length)

    async def _read_loop(self) -> None:
        try:
            while True:
                body = await self.read_frame()
                if body is None:
                    break
                msg = json.loads(body)
                if "method" in msg and "id" not in msg:
                    await self.notifications.put(msg)
                    continue
                fut = self._pending.pop(msg.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                else:
                    self.unmatched.append(msg)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            for fut in self._pending.values():
                fut.cancel()  # the connection is gone; nobody will answer
