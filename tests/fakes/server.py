"""``FakeProvider``: one fake provider server on 127.0.0.1, run in a background
thread of the test process.

    with FakeProvider("anthropic", required_key="k") as fake:
        ...  # talk to fake.url
        fake.configure(status=529, fail_times=1)
        fake.chunk_delay = 0.05          # switches are attributes too
        assert fake.requests[-1]["headers"]["x-api-key"] == "k"
        assert fake.wait_for_disconnect(2.0)

The same fake runs as a process with ``python -m tests.fakes``; ``remote``
drives that one over HTTP with the same methods.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .anthropic import AnthropicDialect
from .azure import AzureDialect
from .common import Dialect
from .gemini import GeminiDialect
from .openai import OpenAIDialect
from .state import FakeState
from .switches import SWITCH_NAMES
from .transport import FakeHTTPServer

__all__ = ["FakeProvider", "FAKE_TYPES", "make_dialect"]

DIALECTS: dict[str, type[Dialect]] = {
    d.type: d for d in (OpenAIDialect, AnthropicDialect, GeminiDialect, AzureDialect)
}
FAKE_TYPES = tuple(DIALECTS)


def make_dialect(type: str) -> Dialect:
    try:
        return DIALECTS[type]()
    except KeyError:
        raise ValueError(f"unknown fake type {type!r}; choose one of {', '.join(FAKE_TYPES)}") from None


class FakeProvider:
    """A fake ``type`` provider (openai, anthropic, gemini, azure-openai).

    ``port=0`` picks a free port. Keyword arguments other than the ones below
    are switches (see ``switches.py``), applied before the server starts.
    """

    def __init__(self, type: str = "openai", *, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False, **switches: Any) -> None:
        dialect = make_dialect(type)
        state = FakeState(type, dialect.default_models)
        state.configure(**switches)
        _set = object.__setattr__
        _set(self, "type", type)
        _set(self, "_dialect", dialect)
        _set(self, "_state", state)
        _set(self, "_address", (host, port))
        _set(self, "_verbose", verbose)
        _set(self, "_server", None)
        _set(self, "_thread", None)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakeProvider:
        if self._server is not None:
            return self
        self._state.stopping.clear()
        server = FakeHTTPServer(self._address, self._dialect, self._state, self._verbose)
        # A short poll so stop() returns in ~10 ms: suites start many fakes.
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01},
            name=f"fake-{self.type}", daemon=True)
        object.__setattr__(self, "_server", server)
        object.__setattr__(self, "_thread", thread)
        thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)
        object.__setattr__(self, "_server", None)
        object.__setattr__(self, "_thread", None)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake is not running; call start() first")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` with no path: add the provider's own."""
        return f"http://{self._address[0]}:{self.port}"

    # -- switches ----------------------------------------------------------

    def configure(self, **switches: Any) -> dict[str, Any]:
        """Change the named switches (others keep their values); returns all."""
        return self._state.configure(**switches)

    def reset(self) -> None:
        """Switches back to defaults; requests and disconnects forgotten."""
        self._state.reset()

    @property
    def switches(self) -> dict[str, Any]:
        return self._state.switches().as_dict()

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, i.e. for switch names.
        if name in SWITCH_NAMES:
            return getattr(self._state.switches(), name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in SWITCH_NAMES:
            self._state.configure(**{name: value})
        else:
            raise AttributeError(f"{name!r} is not a switch of the fake; "
                                 f"switches: {', '.join(sorted(SWITCH_NAMES))}")

    # -- recordings --------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every provider request so far: index, at, method, path, query,
        headers (lower-case names), body (parsed JSON or None), body_text."""
        return self._state.requests()

    @property
    def last_request(self) -> dict[str, Any] | None:
        found = self._state.requests()
        return found[-1] if found else None

    @property
    def disconnects(self) -> list[dict[str, Any]]:
        """Answers whose client left first: at, request_index, path, stage
        ("before first byte", "hang", "stream", "reply"), frames_sent, elapsed."""
        return self._state.disconnects()

    def clear_records(self) -> None:
        self._state.clear_records()

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> dict[str, Any] | None:
        """The ``count``-th disconnect, or None if it has not come in ``timeout`` s."""
        return self._state.wait_for_disconnect(timeout, count)

    async def wait_for_disconnect_async(self, timeout: float = 5.0,
                                        count: int = 1) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._state.wait_for_disconnect, timeout, count)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The requests once there are ``count`` of them (or all after ``timeout`` s)."""
        return self._state.wait_for_requests(count, timeout)

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FakeProvider {self.type} {where}>"
