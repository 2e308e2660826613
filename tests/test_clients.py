"""Clients none of us wrote: pygls' JsonRPCClient over the socket, pytest-lsp over stdio.

Several clients at once on one daemon: replies never cross, notifications
reach everyone, and a client that leaves mid-request harms no one.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol.converters import get_converter
from pygls.client import JsonRPCClient
from pygls.exceptions import JsonRpcException
from pygls.io_ import run_async
from pytest_lsp import ClientServerConfig

from tests.conftest import clean_env

pytestmark = pytest.mark.asyncio


class PyglsClient:
    """pygls' own client, attached to the daemon's Unix socket."""

    def __init__(self) -> None:
        self.client = JsonRPCClient(converter_factory=get_converter)
        self.notes: asyncio.Queue = asyncio.Queue()
        self._stop = threading.Event()
        for method in ("config/didChange", "config/didFail"):
            self.client.feature(method)(self._collector(method))

    def _collector(self, method: str):
        def collect(params) -> None:
            self.notes.put_nowait((method, params))

        return collect

    async def connect(self, path: Path) -> PyglsClient:
        reader, writer = await asyncio.open_unix_connection(str(path))
        self.writer = writer
        self.client.protocol.set_writer(writer)
        self.task = asyncio.create_task(run_async(self._stop, reader, self.client.protocol))
        return self

    async def request(self, method: str, params: dict | None = None):
        return await asyncio.wait_for(self.client.protocol.send_request_async(method, params or {}), 20)

    async def close(self) -> None:
        self._stop.set()
        self.writer.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def _get(obj, name):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


async def test_many_clients_at_once_never_get_each_others_replies(daemon) -> None:
    clients = [await PyglsClient().connect(daemon.socket) for _ in range(4)]
    try:

        async def work(n: int, c: PyglsClient) -> list[str]:
            names = []
            for i in range(10):
                r = await c.request("provider/add", {"name": f"c{n} p{i}", "type": "openai"})
                names.append(_get(_get(r, "provider"), "name"))
            return names

        results = await asyncio.gather(*(work(n, c) for n, c in enumerate(clients)))
        for n, names in enumerate(results):
            assert names == [f"c{n} p{i}" for i in range(10)]
        listed = await clients[0].request("provider/list")
        assert len(_get(listed, "providers")) == 40
        # Every client heard about every change (40 of them).
        for c in clients:
            seen = 0
            while seen < 40:
                method, _ = await asyncio.wait_for(c.notes.get(), 10)
                seen += method == "config/didChange"
    finally:
        for c in clients:
            await c.close()


async def test_errors_reach_pygls_as_json_rpc_errors(daemon) -> None:
    c = await PyglsClient().connect(daemon.socket)
    try:
        with pytest.raises(JsonRpcException) as err:
            await c.request("provider/get", {"id": "ghost"})
        assert err.value.code == -32004
        with pytest.raises(JsonRpcException) as err:
            await c.request("provider/nope")
        assert err.value.code == -32601
    finally:
        await c.close()


async def test_a_client_leaving_mid_request_harms_no_one(daemon) -> None:
    stayers = [await PyglsClient().connect(daemon.socket) for _ in range(3)]
    leaver = await daemon.client()
    try:
        for i in range(30):
            leaver.start("provider/add", {"name": f"leaver {i}", "type": "openai"})
        await leaver.close()  # gone before reading a single reply
        results = await asyncio.gather(
            *(c.request("provider/add", {"name": f"stayer {n}", "type": "gemini"}) for n, c in enumerate(stayers))
        )
        assert sorted(_get(_get(r, "provider"), "name") for r in results) == ["stayer 0", "stayer 1", "stayer 2"]
        # The daemon notices the leaver's departure and forgets it.
        for _ in range(100):
            st = await stayers[0].request("daemon/status")
            if _get(st, "clients") == 3:
                break
            await asyncio.sleep(0.02)
        assert _get(st, "clients") == 3
    finally:
        for c in stayers:
            await c.close()


# -- stdio, through pytest-lsp -------------------------------------------------------

_STDIO_ENV = clean_env(Path(tempfile.mkdtemp(prefix="orchard-stdio-")))


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "orchard", "serve", "--stdio"],
        client_factory=lambda: JsonRPCClient(converter_factory=get_converter),
        server_env=_STDIO_ENV,
    )
)
async def stdio_client(client: JsonRPCClient):
    yield
    # As an editor does when it quits: close the daemon's stdin; it must exit by itself.
    client._server.stdin.close()


async def test_stdio_serves_one_client(stdio_client: JsonRPCClient) -> None:
    protocol = stdio_client.protocol
    status = await protocol.send_request_async("daemon/status", None)
    assert _get(status, "socketPath") is None
    added = await protocol.send_request_async("provider/add", {"name": "Over stdio", "type": "anthropic"})
    assert _get(_get(added, "provider"), "id") == "over-stdio"
    listed = await protocol.send_request_async("provider/list", {})
    assert [_get(p, "id") for p in _get(listed, "providers")] == ["over-stdio"]
