"""The shape every fake shares: a decoded request, the two kinds of answer
(a whole body, or a stream of frames), and the ``Dialect`` base class.

A dialect is one provider's wire format. It turns a request and the current
switches into an answer with pure functions and never touches a socket;
``transport`` writes the answer and applies the stream-level switches
(delays, truncation, malformed or error frames) the same way for everyone.
The order in which the request-level switches win lives here, once:
forced status, then HTML, then garbage, then routing, then the key check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from .switches import Switches

__all__ = [
    "Request", "Reply", "Stream", "Route", "Dialect",
    "json_reply", "sse_data", "sse_event", "dumps", "format_retry_after", "page_limit",
    "HTML_PAGE", "GARBAGE",
]

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n"
    b"<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the web server "
    b"is successfully installed and working.</p>\n</body>\n</html>\n"
)
# Served as application/json on purpose: a client must not trust the header.
GARBAGE = b"\x1b[1mOK\x1b[0m this is not JSON {\"choices\": [\n"


@dataclass
class Request:
    index: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    body_text: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    """A 200 answer sent as chunks, one frame per chunk."""

    frames: list[bytes]
    error_frame: bytes
    malformed_frame: bytes
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request, "re.Match[str]", Switches], "Reply | Stream"]


@dataclass
class Route:
    method: str
    pattern: str
    handler: Handler
    needs_key: bool = True

    def __post_init__(self) -> None:
        self.regex = re.compile(self.pattern + r"\Z")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, dumps(obj), "application/json", dict(headers or {}))


def sse_data(obj: Any, end: bytes = b"\n\n") -> bytes:
    return b"data: " + dumps(obj) + end


def sse_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\n" + sse_data(obj)


def format_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


class Dialect:
    """One provider's wire format. Subclasses fill in the hooks below."""

    type: ClassVar[str]
    default_models: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        self.routes = self.build_routes()

    # -- hooks -------------------------------------------------------------

    def build_routes(self) -> list[Route]:
        raise NotImplementedError

    def key_of(self, req: Request) -> str | None:
        raise NotImplementedError

    def error(self, status: int, message: str | None = None, **detail: Any) -> Reply:
        """The provider's own error body for ``status``."""
        raise NotImplementedError

    def key_error(self, req: Request, key: str | None) -> Reply:
        raise NotImplementedError

    def not_found(self, req: Request) -> Reply:
        return self.error(404, f"Unknown path: {req.method} {req.path}")

    def stream_error_frame(self) -> bytes:
        raise NotImplementedError

    def malformed_frame(self) -> bytes:
        raise NotImplementedError

    # -- shared behaviour --------------------------------------------------

    def stream(self, frames: list[bytes], **kwargs: Any) -> Stream:
        return Stream(frames, self.stream_error_frame(), self.malformed_frame(), **kwargs)

    def respond(self, req: Request, sw: Switches) -> Reply | Stream:
        if sw.status is not None:
            reply = self.error(sw.status, sw.message, retry_after=sw.retry_after)
            if sw.retry_after is not None:
                reply.headers["Retry-After"] = format_retry_after(sw.retry_after)
            return reply
        if sw.html:
            return Reply(200, HTML_PAGE, "text/html; charset=utf-8")
        if sw.garbage:
            return Reply(200, GARBAGE, "application/json")
        for route in self.routes:
            match = route.regex.match(req.path)
            if match is None or route.method != req.method:
                continue
            if route.needs_key and (refused := self.refuse_key(req, sw)):
                return refused
            return route.handler(req, match, sw)
        return self.not_found(req)

    def refuse_key(self, req: Request, sw: Switches) -> Reply | None:
        """The provider's answer to a missing or wrong key, or None if accepted."""
        key = self.key_of(req)
        return None if sw.key_accepted(key) else self.key_error(req, key)


def page_limit(asked: str | None, default: int, maximum: int, sw: Switches) -> int | None:
    """The page size to serve: what the client asked, capped by ``page_size``.

    None means the client's value is not a number, which providers refuse.
    """
    if asked is None or asked == "":
        size = default
    else:
        try:
            size = int(asked)
        except ValueError:
            return None
        if size <= 0:
            size = default
    size = min(size, maximum)
    return min(size, sw.page_size) if sw.page_size else size
