"""What one fake remembers: its switches, the requests it received, and the
streams whose client went away before the fake had finished.

All of it sits behind one condition variable, because the HTTP handler
threads write it while the test (or the control endpoints) read it and wait
on it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .switches import Switches

__all__ = ["FakeState"]


class FakeState:
    def __init__(self, type: str, default_models: tuple[str, ...]) -> None:
        self.type = type
        self._default_models = default_models
        self._cond = threading.Condition()
        self._switches = self._defaults()
        self._requests: list[dict[str, Any]] = []
        self._disconnects: list[dict[str, Any]] = []
        self._failures = 0
        # Set when the fake stops, so that handler threads sleeping in a delay
        # or a hang give up instead of keeping the process alive.
        self.stopping = threading.Event()

    def _defaults(self) -> Switches:
        return Switches(models=list(self._default_models))

    # -- switches ----------------------------------------------------------

    def configure(self, **changes: Any) -> dict[str, Any]:
        with self._cond:
            self._switches = self._switches.updated(**changes)
            # A new fail_times starts counting afresh, so "fail twice" means
            # the next two requests whatever came before.
            if "fail_times" in changes:
                self._failures = 0
            return self._switches.as_dict()

    def reset(self) -> None:
        with self._cond:
            self._switches = self._defaults()
            self._requests.clear()
            self._disconnects.clear()
            self._failures = 0
            self._cond.notify_all()

    def switches(self) -> Switches:
        with self._cond:
            return self._switches.copy()

    def switches_for(self, key: str | None) -> Switches:
        """The switches that apply to one provider request.

        Misbehaviour is claimed here, once per request, so that ``fail_times``
        counts requests rather than chunks.
        """
        with self._cond:
            sw = self._switches.copy()
            if not sw.misbehaves():
                return sw
            if sw.fail_keys is not None and key not in sw.fail_keys:
                return sw.behaving()
            if sw.fail_times is None:
                return sw
            if self._failures < sw.fail_times:
                self._failures += 1
                return sw
            return sw.behaving()

    # -- recordings --------------------------------------------------------

    def record_request(self, request: dict[str, Any]) -> int:
        with self._cond:
            index = len(self._requests)
            self._requests.append({"index": index, **request})
            self._cond.notify_all()
            return index

    def record_disconnect(self, info: dict[str, Any]) -> None:
        with self._cond:
            self._disconnects.append({"at": time.time(), **info})
            self._cond.notify_all()

    def clear_records(self) -> None:
        with self._cond:
            self._requests.clear()
            self._disconnects.clear()

    def requests(self) -> list[dict[str, Any]]:
        with self._cond:
            return [dict(r) for r in self._requests]

    def disconnects(self) -> list[dict[str, Any]]:
        with self._cond:
            return [dict(d) for d in self._disconnects]

    def wait_for_disconnect(self, timeout: float, count: int = 1) -> dict[str, Any] | None:
        """The ``count``-th disconnect, waiting up to ``timeout`` seconds for it."""
        ok = self._wait(lambda: len(self._disconnects) >= count, timeout)
        with self._cond:
            return dict(self._disconnects[count - 1]) if ok else None

    def wait_for_requests(self, count: int, timeout: float) -> list[dict[str, Any]]:
        self._wait(lambda: len(self._requests) >= count, timeout)
        return self.requests()

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)
