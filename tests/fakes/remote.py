"""Driving a fake that runs in another process: ``RemoteFake`` speaks the
``/_fake/`` control API with the same methods as ``FakeProvider``, and
``FakeProcess`` starts ``python -m tests.fakes`` and waits for its READY line.

    with FakeProcess("openai", models=["gpt2"]) as fake:
        fake.configure(chunk_delay=0.1)
        ...  # point the daemon at fake.url

Stdlib only (urllib, with proxies ignored), so the demo can use it too.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .switches import SwitchError

__all__ = ["RemoteFake", "FakeProcess", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[2]
# A proxy from the environment must never see loopback control calls.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RemoteFake:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + "/_fake/" + path, data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                detail = json.load(exc).get("error", exc.reason)
            except ValueError:
                detail = exc.reason
            raise SwitchError(f"fake at {self.url} refused {method} /_fake/{path}: {detail}") from None

    def configure(self, **switches: Any) -> dict[str, Any]:
        return self._call("POST", "config", switches)["switches"]

    def reset(self) -> None:
        self._call("POST", "reset", {})

    @property
    def switches(self) -> dict[str, Any]:
        return self._call("GET", "config")["switches"]

    @property
    def type(self) -> str:
        return self._call("GET", "config")["type"]

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "requests")["requests"]

    @property
    def disconnects(self) -> list[dict[str, Any]]:
        return self._call("GET", "disconnects")["disconnects"]

    def clear_records(self) -> None:
        self._call("DELETE", "requests")

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> dict[str, Any] | None:
        found = self._call("GET", f"disconnects?wait={timeout}&count={count}",
                           timeout=timeout + 5)["disconnects"]
        return found[count - 1] if len(found) >= count else None


class FakeProcess(RemoteFake):
    """``python -m tests.fakes`` as a child process; switches as keywords."""

    def __init__(self, type: str = "openai", *, port: int = 0, models: list[str] | None = None,
                 startup_timeout: float = 10.0, **switches: Any) -> None:
        self._args = [sys.executable, "-m", "tests.fakes", "--type", type, "--port", str(port)]
        for model in models or ():
            self._args += ["--model", model]
        self._switches = switches
        self._startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> FakeProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            self._args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        self.url = _read_ready(self.process, self._startup_timeout)
        if self._switches:
            self.configure(**self._switches)
        return self

    def stop(self) -> int | None:
        """SIGTERM, then the exit code (SIGKILL if it takes over 5 s)."""
        if self.process is None:
            return None
        self.process.terminate()
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None
        return code

    def __enter__(self) -> FakeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_ready(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.05)
        if readable:
            line = process.stdout.readline()
            if line.startswith("READY "):
                return line.split()[1]
            if not line and process.poll() is not None:
                break
    process.kill()
    process.wait()
    raise RuntimeError(f"the fake did not print READY within {timeout} s: {' '.join(process.args)}")
