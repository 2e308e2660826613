"""A provider's own proxy: requests go through it, and a change applies without a restart.

The proxy is a real HTTP forward proxy on 127.0.0.1 (stdlib, written here):
it takes absolute-form requests (`POST http://host:port/path`), forwards them
to the fake provider and relays the answer, recording what passed through.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.asyncio


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _relay(self) -> None:
        target = urlsplit(self.path)
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body, headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = _relay


@pytest.fixture
def proxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forward)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_requests_go_through_the_providers_proxy_and_a_change_needs_no_restart(client, fakes, proxy) -> None:
    fake = fakes("openai")
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    await client.request(
        "provider/add",
        {"name": "Behind proxy", "type": "openai", "apiAddress": fake.url + "/", "models": ["gpt2"], "proxy": proxy_url},
    )
    result = await client.request("chat/send", {"providerId": "behind-proxy", "message": "hello"})
    assert result["status"] == "complete" and result["text"] == "You said: hello"
    assert proxy.seen == [f"{fake.url}/v1/chat/completions"]

    # Switched off in the settings: the next request goes direct, no restart.
    await client.request("provider/update", {"id": "behind-proxy", "proxy": None})
    result = await client.request("chat/send", {"providerId": "behind-proxy", "message": "again"})
    assert result["status"] == "complete"
    assert len(proxy.seen) == 1
    assert len(fake.requests) == 2


async def test_a_proxy_that_refuses_is_reported_as_such(client, fakes) -> None:
    fake = fakes("openai")
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    await client.request(
        "provider/add",
        {"name": "Bad proxy", "type": "openai", "apiAddress": fake.url + "/", "models": ["gpt2"],
         "proxy": f"http://127.0.0.1:{dead}"},
    )  # fmt: skip
    result = await client.request("chat/send", {"providerId": "bad-proxy", "message": "hello"})
    assert result["status"] == "error"
    assert result["error"]["kind"] == "unreachable"
    assert f"through the proxy http://127.0.0.1:{dead}" in result["error"]["message"]
    assert "proxy" in result["error"]["hint"]
    assert fake.requests == []
