"""HTTP/1.1 on a socket for the fakes: decode a request, record it, hand it to
the dialect, and write the answer.

Streams are sent with chunked transfer encoding, one frame per chunk, each in
a single ``sendall`` with Nagle off, so a client sees every frame when it is
sent. While a stream waits (``first_byte_delay``, ``chunk_delay``, ``hang``)
or before each frame, the socket is peeked: a client that closed its end is
noticed at once and recorded as a disconnect, which is how a test proves
that cancelling a chat closed the upstream connection.
"""

from __future__ import annotations

import json
import math
import re
import select
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .common import Dialect, Reply, Request, Stream, dumps
from .control import PREFIX, handle_control
from .state import FakeState
from .switches import Switches

__all__ = ["FakeHTTPServer"]

_QUERY_KEY = re.compile(r"([?&]key=)[^&\s]*")
# How often a waiting handler looks at its socket and at the stop flag.
_TICK = 0.02


class ClientGone(Exception):
    """The client closed the connection before the answer was complete."""


class ServerStopping(Exception):
    """The fake is stopping; abandon the answer."""


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], dialect: Dialect, state: FakeState,
                 verbose: bool = False) -> None:
        self.dialect = dialect
        self.state = state
        self.verbose = verbose
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, FakeHandler)

    def handle_error(self, request, client_address) -> None:
        # A client hanging up mid-answer (Check, cancel) is normal here, not an error to print.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, BrokenPipeError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def track(self, sock: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            (self._open.add if is_open else self._open.discard)(sock)

    def close_connections(self) -> None:
        """Cut every client connection, so that clients waiting on a stopped
        fake see the connection close instead of hanging."""
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "orchard-fake"
    sys_version = ""
    disable_nagle_algorithm = True
    server: FakeHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            # Gemini keys can ride in the query string; keep them out of logs.
            line = _QUERY_KEY.sub(r"\1***", format % args)
            sys.stderr.write(f"fake {self.server.state.type}: {line}\n")

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    # -- one request -------------------------------------------------------

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        raw = self._read_body()
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if raw else None
        except ValueError:
            body = None
        if url.path.startswith(PREFIX):
            status, answer = handle_control(self.server.state, self.command, url.path, query, body)
            try:
                self._write_reply(Reply(status, dumps(answer)))
            except (ClientGone, ServerStopping):
                self.close_connection = True
            return

        state, dialect = self.server.state, self.server.dialect
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"at": time.time(), "method": self.command, "path": url.path, "query": query,
                  "headers": headers, "body": body, "body_text": text}
        req = Request(state.record_request(record), self.command, url.path, query, headers,
                      body, text)
        sw = state.switches_for(dialect.key_of(req))
        self._started = time.monotonic()
        self._frames_sent = 0
        self._stage = "before first byte"
        try:
            if sw.first_byte_delay:
                self._pause(sw.first_byte_delay)
            if sw.hang:
                self._stage = "hang"
                self._pause(math.inf)
            answer = self._respond(req, sw)
            if isinstance(answer, Stream):
                self._stage = "stream"
                self._write_stream(answer, sw)
            else:
                self._stage = "reply"
                self._write_reply(answer)
        except ClientGone:
            self.close_connection = True
            state.record_disconnect({
                "request_index": req.index, "path": req.path, "stage": self._stage,
                "frames_sent": self._frames_sent,
                "elapsed": round(time.monotonic() - self._started, 4),
            })
        except ServerStopping:
            self.close_connection = True

    def _respond(self, req: Request, sw: Switches) -> Reply | Stream:
        try:
            return self.server.dialect.respond(req, sw)
        except Exception as exc:
            # A bug in a fake must show up as a loud 500, not a dead connection.
            traceback.print_exc()
            return self.server.dialect.error(500, f"the fake crashed: {exc!r}")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, if any, end with an empty line.
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- writing -----------------------------------------------------------

    def _write_reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self._send(self._end_headers_bytes())
        if self.command != "HEAD":
            self._send(reply.body)

    def _write_stream(self, stream: Stream, sw: Switches) -> None:
        self.send_response(200)
        self.send_header("Content-Type", stream.content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in stream.headers.items():
            self.send_header(name, value)
        self._send(self._end_headers_bytes())
        for i, frame in enumerate(stream.frames):
            if i and sw.chunk_delay:
                self._pause(sw.chunk_delay)
            if sw.truncate_after is not None and i >= sw.truncate_after:
                if sw.truncate_style == "clean":
                    self._send(b"0\r\n\r\n")
                else:
                    # No last chunk: the client sees the body cut short.
                    self.close_connection = True
                return
            if sw.error_event_after is not None and i == sw.error_event_after:
                self._chunk(stream.error_frame)
                self._send(b"0\r\n\r\n")
                return
            if sw.malformed_after is not None and i == sw.malformed_after:
                self._chunk(stream.malformed_frame)
            self._chunk(frame)
            self._frames_sent += 1
        self._send(b"0\r\n\r\n")

    def _end_headers_bytes(self) -> bytes:
        # BaseHTTPRequestHandler buffers headers; take them so that headers
        # go out through _send and a vanished client is noticed there too.
        self._headers_buffer.append(b"\r\n")
        data = b"".join(self._headers_buffer)
        self._headers_buffer = []
        return data

    def _chunk(self, data: bytes) -> None:
        self._send(b"%X\r\n%s\r\n" % (len(data), data))

    def _send(self, data: bytes) -> None:
        self._check_client()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientGone from exc

    # -- noticing a client that left --------------------------------------

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        stopping = self.server.state.stopping
        while True:
            if stopping.is_set():
                raise ServerStopping
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select([self.connection], [], [], min(remaining, _TICK))
            if readable:
                self._check_client()
                if self._peer_sent_data():
                    # A pipelined request is waiting; sleep instead of spinning.
                    time.sleep(min(max(remaining, 0), _TICK))

    def _check_client(self) -> None:
        if self.server.state.stopping.is_set():
            raise ServerStopping
        try:
            data = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise ClientGone from exc
        if data == b"":
            raise ClientGone

    def _peer_sent_data(self) -> bool:
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:
            return False
