"""LSP-style ``Content-Length`` framing, for asyncio streams and blocking sockets.

A frame is a block of ``Name: value`` header lines, a blank line, and a body
of exactly ``Content-Length`` bytes (UTF-8 JSON). The daemon, the ``connect``
bridge and the command line all frame through this module, which imports
nothing heavy so that the command line starts fast.

A frame that cannot be read (a bad or missing header, a length over the
limit, a connection closed half-way) raises :class:`FrameError`: the stream
is out of step and the only safe thing left is to close it. A readable frame
whose body is not JSON is the dispatcher's business, not this module's.
"""

from __future__ import annotations

import asyncio
from typing import BinaryIO

#: Largest body accepted. A chat history with long messages fits many times over.
MAX_BODY = 64 * 1024 * 1024
MAX_HEADER_LINE = 4096
MAX_HEADERS = 32


class FrameError(Exception):
    """The byte stream does not hold a readable frame; close the connection."""


def encode(body: bytes) -> bytes:
    # The length counts bytes, not characters: bodies carry raw UTF-8.
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class _Headers:
    """Collects header lines and yields the body length; shared by both readers."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.count = 0
        self.length: int | None = None

    def feed(self, line: bytes) -> bool:
        """Take one line (with its ending); return True at the blank line that ends the headers."""
        if not line.endswith(b"\n"):
            raise FrameError("the connection closed in the middle of a header")
        line = line.rstrip(b"\r\n")
        if not line:
            if self.length is None:
                raise FrameError("a frame has no Content-Length header")
            return True
        self.count += 1
        if self.count > MAX_HEADERS:
            raise FrameError(f"a frame has more than {MAX_HEADERS} header lines")
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            shown = line[:60].decode("utf-8", "replace")
            raise FrameError(f"bad header line {shown!r}: expected `Content-Length: N`")
        if name.strip().lower() == b"content-length":
            value = value.strip()
            if not value.isdigit():
                raise FrameError(f"Content-Length is not a number: {value[:30].decode('utf-8', 'replace')!r}")
            length = int(value)
            if length > self.max_body:
                raise FrameError(f"Content-Length {length} is over the limit of {self.max_body} bytes")
            self.length = length
        return False


async def read_frame(reader: asyncio.StreamReader, max_body: int = MAX_BODY) -> bytes | None:
    """The next frame's body, or None at a clean end of stream (between frames)."""
    headers = _Headers(max_body)
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and headers.count == 0:
                return None
            raise FrameError("the connection closed in the middle of a header") from None
        except asyncio.LimitOverrunError:
            raise FrameError("a header line is too long") from None
        if len(line) > MAX_HEADER_LINE:
            raise FrameError("a header line is too long")
        if headers.feed(line):
            break
    assert headers.length is not None
    try:
        return await reader.readexactly(headers.length)
    except asyncio.IncompleteReadError:
        raise FrameError(
            f"the connection closed before the {headers.length}-byte body arrived"
        ) from None


def read_frame_sync(stream: BinaryIO, max_body: int = MAX_BODY) -> bytes | None:
    """Blocking twin of :func:`read_frame` for a file object (socket.makefile('rb'))."""
    headers = _Headers(max_body)
    while True:
        line = stream.readline(MAX_HEADER_LINE + 1)
        if not line and headers.count == 0:
            return None
        if len(line) > MAX_HEADER_LINE:
            raise FrameError("a header line is too long")
        if headers.feed(line):
            break
    assert headers.length is not None
    body = stream.read(headers.length)
    if len(body) != headers.length:
        raise FrameError(f"the connection closed before the {headers.length}-byte body arrived")
    return body
