"""JSON-RPC 2.0 for one client connection: dispatch, replies, cancel, back-pressure.

One :class:`Connection` per client, whatever the transport (Unix socket or
stdio). It reads frames, decodes each message with msgspec, runs the handler
that the :class:`Router` names for its method in a task of its own (so a slow
request never holds up the next one), and writes replies and notifications
through a bounded outbox drained by a single writer task.

This is where Orchard's errors become JSON-RPC error objects, once:
:class:`~orchard.errors.OrchardError` keeps its code, message and data;
a params mismatch is ``-32602`` naming the field; a cancelled request is
``-32800``; anything unexpected is ``-32603`` with a pointer to the log and
never a traceback.

Rules taken from what real clients send: a request without ``params`` is
treated as having ``{}`` (vscode-jsonrpc and Neovim omit it); unknown
notifications are ignored; ``$/cancelRequest`` cancels the request's task,
and a handler may catch the cancel and still answer (chat returns the partial
message). A client that vanishes mid-request takes only its own tasks with it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import re
import select
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from orchard import errors
from orchard.server import framing

log = logging.getLogger(__name__)

#: A client whose unread replies pass this many bytes is disconnected:
#: it has stopped reading, and the daemon must not grow without bound.
MAX_OUTBOX_BYTES = 16 * 1024 * 1024

_ids = itertools.count(1)
_encoder = msgspec.json.Encoder()


class Message(Struct, omit_defaults=True):
    """Any JSON-RPC 2.0 message; which members are present says what it is."""

    jsonrpc: str | UnsetType = UNSET
    id: int | str | None | UnsetType = UNSET
    method: str | UnsetType = UNSET
    params: Raw | UnsetType = UNSET
    result: Raw | UnsetType = UNSET
    error: Raw | UnsetType = UNSET


_message_decoder = msgspec.json.Decoder(Message)


class CancelParams(Struct):
    id: int | str


@dataclass
class Route:
    name: str
    params: type
    result: type
    handler: Callable[[Context, Any], Awaitable[Any]]
    decoder: msgspec.json.Decoder

    @property
    def doc(self) -> str:
        return (self.handler.__doc__ or "").strip()


class Router:
    """Method name → handler, with the params and result types read from its annotations."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        #: notification name → params type, for the protocol schema and docs
        self.notifications: dict[str, type] = {}

    def method(self, name: str):
        def register(handler):
            hints = get_type_hints(handler)
            params_type = hints["params"]
            result_type = hints.get("return", type(None))
            self.routes[name] = Route(
                name, params_type, result_type, handler, msgspec.json.Decoder(params_type)
            )
            return handler

        return register

    def notification(self, name: str, params_type: type) -> None:
        self.notifications[name] = params_type

    def include(self, other: Router) -> None:
        self.routes.update(other.routes)
        self.notifications.update(other.notifications)


@dataclass
class Context:
    """What a handler knows about the request it serves."""

    connection: Connection
    request_id: int | str
    method: str

    @property
    def daemon(self) -> Any:
        return self.connection.daemon

    def notify(self, method: str, params: Any) -> None:
        """A notification to the client that made this request only."""
        self.connection.notify(method, params)


class Connection:
    """One client: reads its requests, runs them, writes their replies."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter | Any,
        router: Router,
        daemon: Any,
        *,
        name: str = "client",
    ) -> None:
        self.id = next(_ids)
        self.name = f"{name}#{self.id}"
        self.daemon = daemon
        self._reader = reader
        self._writer = writer
        self._router = router
        self._tasks: dict[int | str, asyncio.Task] = {}
        self._outbox: collections.deque[bytes | _Mergeable] = collections.deque()
        self._outbox_bytes = 0
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._write_task: asyncio.Task | None = None
        self.on_close: list[Callable[[Connection], None]] = []

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- reading ---------------------------------------------------------------

    async def serve(self) -> None:
        """Read and dispatch until the client leaves or sends an unreadable frame."""
        self._write_task = asyncio.create_task(self._write_loop(), name=f"{self.name} writer")
        try:
            while not self.closed:
                try:
                    body = await framing.read_frame(self._reader)
                except framing.FrameError as exc:
                    log.warning("%s: unreadable frame, closing: %s", self.name, exc)
                    self._send_error(None, errors.PARSE_ERROR, f"Unreadable frame: {exc}. Closing the connection.")
                    await self.close(flush=True)
                    break
                if body is None:
                    # The client closed its side. It may still be reading (a bridge
                    # that half-closes after its last request): answer what it asked,
                    # unless it is gone altogether, which it may also be later.
                    while self._tasks and not self._peer_gone():
                        await asyncio.wait(list(self._tasks.values()), timeout=0.05)
                    await self.close(flush=not self._peer_gone())
                    break
                self._dispatch(body)
        except (ConnectionError, OSError) as exc:
            log.info("%s: connection lost: %s", self.name, exc)
        finally:
            await self.close()

    def _dispatch(self, body: bytes) -> None:
        try:
            # msgspec checks strings it decodes, but not inside Raw params: check it all once.
            body.decode("utf-8")
            msg = _message_decoder.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            if isinstance(exc, UnicodeDecodeError):
                detail = "the body is not valid UTF-8"
            elif isinstance(exc, msgspec.ValidationError):
                if body.lstrip().startswith(b"["):
                    detail = "batches are not supported; send one message per frame"
                elif not body.lstrip().startswith(b"{"):
                    detail = "a message must be a JSON object"
                elif "at `$.id`" in str(exc):
                    detail = "`id` must be a number or a string"
                else:
                    detail = str(exc).replace("`$.", "`")
                return self._send_error(None, errors.INVALID_REQUEST, f"Invalid request: {detail}.")
            else:
                detail = str(exc)
            return self._send_error(None, errors.PARSE_ERROR, f"Parse error: {detail}.")
        if msg.method is UNSET:
            if msg.id is UNSET or (msg.result is UNSET and msg.error is UNSET):
                return self._send_error(
                    _reply_id(msg), errors.INVALID_REQUEST, "Invalid request: a request needs `method`."
                )
            return  # a response to something we never ask; nothing to do
        if msg.jsonrpc != "2.0":
            return self._send_error(
                _reply_id(msg), errors.INVALID_REQUEST, 'Invalid request: `jsonrpc` must be "2.0".'
            )
        if msg.id is UNSET:
            return self._notification(msg.method, msg.params)
        if msg.id is None:
            return self._send_error(None, errors.INVALID_REQUEST, "Invalid request: `id` must not be null.")
        self._request(msg.id, msg.method, msg.params)

    def _notification(self, method: str, params: Raw | UnsetType) -> None:
        if method == "$/cancelRequest":
            try:
                target = msgspec.json.decode(params or b"null", type=CancelParams).id
            except (msgspec.DecodeError, TypeError):
                return
            task = self._tasks.get(target)
            if task is not None and not task.done():
                log.info("%s: cancel #%s", self.name, target)
                task.cancel()
            return
        log.debug("%s: ignoring notification %s", self.name, method)

    def _request(self, req_id: int | str, method: str, params: Raw | UnsetType) -> None:
        route = self._router.routes.get(method)
        if route is None:
            return self._send_error(
                req_id,
                errors.METHOD_NOT_FOUND,
                f"Unknown method `{method}`. docs/protocol.md lists the methods this daemon serves.",
            )
        if req_id in self._tasks:
            return self._send_error(
                req_id, errors.INVALID_REQUEST, f"Invalid request: id {req_id!r} is already in use."
            )
        raw = bytes(params) if params is not UNSET else b""
        if raw.strip() in (b"", b"null"):
            raw = b"{}"
        try:
            decoded = route.decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return self._send_error(req_id, errors.INVALID_PARAMS, _params_message(method, exc), _params_data(exc))
        ctx = Context(self, req_id, method)
        task = asyncio.create_task(self._run(route, ctx, decoded), name=f"{self.name} {method} #{req_id}")
        self._tasks[req_id] = task
        task.add_done_callback(lambda t: self._cancelled_before_start(t, req_id))

    def _cancelled_before_start(self, task: asyncio.Task, req_id: int | str) -> None:
        # A cancel that arrives in the same read as its request cancels the task
        # before `_run` starts, so `_run` cannot answer: answer here.
        if self._tasks.get(req_id) is task:
            del self._tasks[req_id]
            if task.cancelled() and not self.closed:
                self._send_error(req_id, errors.REQUEST_CANCELLED, "The request was cancelled.")

    async def _run(self, route: Route, ctx: Context, params: Any) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = await route.handler(ctx, params)
        except asyncio.CancelledError:
            outcome = "cancelled"
            if not self.closed:
                self._send_error(ctx.request_id, errors.REQUEST_CANCELLED, "The request was cancelled.")
            # A cancel from the client ends here; a daemon shutdown propagates.
            if self.closed or _shutting_down(self.daemon):
                raise
        except errors.OrchardError as exc:
            outcome = f"error {exc.code} {exc.kind}"
            self._send_error(ctx.request_id, exc.code, str(exc), exc.to_data())
        except Exception:
            outcome = "internal error"
            log.exception("%s: %s #%s failed", self.name, route.name, ctx.request_id)
            self._send_error(
                ctx.request_id,
                errors.INTERNAL_ERROR,
                f"Orchard failed to handle `{route.name}`; this is a bug. The daemon log has the details: "
                f"{getattr(self.daemon, 'log_path', 'see `orchard status`')}.",
            )
        else:
            self._send(_encoder.encode({"jsonrpc": "2.0", "id": ctx.request_id, "result": result}))
        finally:
            self._tasks.pop(ctx.request_id, None)
            log.info(
                "%s %s #%s %s %.1fms",
                self.name,
                route.name,
                ctx.request_id,
                outcome,
                (time.perf_counter() - started) * 1000,
            )

    def _peer_gone(self) -> bool:
        """True when the client closed both directions (not just its sending side).

        A socket whose peer has closed reports POLLHUP, and a pipe whose reader
        has closed reports POLLERR; a half-closed socket reports neither.
        """
        info = getattr(self._writer, "get_extra_info", None)
        if info is None:
            return False
        handle = info("socket") or info("pipe")
        try:
            fd = handle.fileno() if handle is not None else -1
        except (OSError, ValueError):
            return True
        if fd < 0:
            return True
        poller = select.poll()
        poller.register(fd, 0)  # POLLHUP and POLLERR are always reported
        return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(0))

    # -- writing ---------------------------------------------------------------

    def notify(self, method: str, params: Any) -> None:
        self.send_encoded(encode_notification(method, params))

    def send_encoded(self, body: bytes) -> None:
        """Queue an already-encoded message body (broadcasts encode once for everyone)."""
        self._send(body)

    def _send_error(self, req_id: int | str | None, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data:
            error["data"] = data
        self._send(_encoder.encode({"jsonrpc": "2.0", "id": req_id, "error": error}))

    def notify_merging(self, method: str, params: Any, merge: Callable[[Any, Any], Any | None], size: int) -> None:
        """Queue a notification that may be merged with the one before it while this client is behind.

        Merging happens only while the OS refuses more bytes for this client
        (it is not reading), so a client that keeps up sees every one, even in
        a burst; a slow one gets fewer, larger ones (``merge`` says how, or
        returns None when the two cannot be merged) instead of a backlog.
        """
        if self.closed:
            return
        last = self._outbox[-1] if self._outbox else None
        if isinstance(last, _Mergeable) and last.method == method and self._behind():
            merged = merge(last.params, params)
            if merged is not None:
                last.params = merged
                last.size += size
                self._outbox_bytes += size
                return
        self._queue(_Mergeable(method, params, size), size)

    def _behind(self) -> bool:
        """The client is not reading: bytes are waiting in the transport that the OS would not take."""
        transport = getattr(self._writer, "transport", None)
        try:
            return transport is not None and transport.get_write_buffer_size() > 0
        except (AttributeError, RuntimeError):
            return False

    def _send(self, body: bytes) -> None:
        if self.closed:
            return
        frame = framing.encode(body)
        self._queue(frame, len(frame))

    def _queue(self, item: bytes | _Mergeable, size: int) -> None:
        self._outbox.append(item)
        self._outbox_bytes += size
        if self._outbox_bytes > MAX_OUTBOX_BYTES:
            log.warning("%s: stopped reading (%d bytes unread); disconnecting it", self.name, self._outbox_bytes)
            self._outbox.clear()
            asyncio.get_running_loop().create_task(self.close())
            return
        self._wake.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox:
                    self._writer.write(self._pop())
                    await self._writer.drain()
        except (ConnectionError, OSError):
            await self.close()

    def _pop(self) -> bytes:
        item = self._outbox.popleft()
        if isinstance(item, _Mergeable):
            self._outbox_bytes -= item.size
            return framing.encode(encode_notification(item.method, item.params))
        self._outbox_bytes -= len(item)
        return item

    async def close(self, *, flush: bool = False) -> None:
        """Close the connection and cancel its requests.

        With ``flush``, replies already queued (such as the error explaining
        why we close) get up to a second to go out first.
        """
        if self.closed:
            return
        self._closed.set()
        for callback in self.on_close:
            callback(self)
        for task in list(self._tasks.values()):
            task.cancel()
        if self._write_task is not None and self._write_task is not asyncio.current_task():
            if flush and self._outbox:
                try:
                    await asyncio.wait_for(self._drain_then_stop(), timeout=1.0)
                except (TimeoutError, asyncio.TimeoutError, ConnectionError, OSError):
                    pass
            self._write_task.cancel()
        try:
            self._writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass

    async def _drain_then_stop(self) -> None:
        while self._outbox:
            self._writer.write(self._pop())
            await self._writer.drain()


@dataclass
class _Mergeable:
    """A notification still waiting in an outbox, which later ones may be merged into."""

    method: str
    params: Any
    size: int


def encode_notification(method: str, params: Any) -> bytes:
    return _encoder.encode({"jsonrpc": "2.0", "method": method, "params": params})


def _reply_id(msg: Message) -> int | str | None:
    return None if msg.id is UNSET else msg.id


def _shutting_down(daemon: Any) -> bool:
    return bool(getattr(daemon, "stopping", False))


def _params_message(method: str, exc: msgspec.ValidationError) -> str:
    text = str(exc).replace("`$.", "`params.").replace("`$`", "`params`")
    text = text.replace("Object contains unknown field", "unknown field").replace(
        "Object missing required field", "missing field"
    )
    return f"Invalid params for `{method}`: {text[:1].lower() + text[1:]}."


def _params_data(exc: msgspec.ValidationError) -> dict[str, Any]:
    """`data` of a -32602: `field` is the dotted path of the field at fault (`params.temperature`
    is `params.temperature`; an unknown or missing member names that member, not its parent)."""
    text = str(exc)
    data: dict[str, Any] = {"kind": "invalid_params"}
    at = re.search(r"`\$\.([^`]+)`", text)
    member = re.search(r"(?:unknown|required) field `([^`]+)`", text)
    path = at.group(1) if at else ""
    if member:
        path = f"{path}.{member.group(1)}" if path else member.group(1)
    if path:
        data["field"] = path
    return data
