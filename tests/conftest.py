"""Test fixtures: a real daemon on a temp socket, with temp config, data, state and runtime dirs.

Every test that needs the daemon gets its own process (`python -m orchard
serve`) in an environment where every user directory points into the
test's temp dir, keys and proxy variables are stripped, and nothing outside
127.0.0.1 can be reached. Clients talk to it over the real socket.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT))

from tests.fakes import FakeProvider  # noqa: E402
from tests.rpc import RawClient  # noqa: E402

_STRIP = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy")


def clean_env(base: Path) -> dict[str, str]:
    """An environment whose every user directory is under ``base``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _STRIP and not k.endswith("_API_KEY") and not k.startswith(("ORCHARD_", "XDG_"))
    }
    for name in ("config", "data", "state", "runtime", "home"):
        (base / name).mkdir(parents=True, exist_ok=True, mode=0o700)
    # A short socket dir: AF_UNIX paths are limited to 107 bytes.
    sock_dir = Path(tempfile.mkdtemp(prefix="orc-", dir="/tmp"))
    env.update(
        HOME=str(base / "home"),
        XDG_CONFIG_HOME=str(base / "config"),
        XDG_DATA_HOME=str(base / "data"),
        XDG_STATE_HOME=str(base / "state"),
        XDG_RUNTIME_DIR=str(base / "runtime"),
        ORCHARD_CONFIG=str(base / "config" / "orchard" / "config.toml"),
        ORCHARD_DATA=str(base / "data" / "orchard"),
        ORCHARD_STATE=str(base / "state" / "orchard"),
        ORCHARD_SOCKET=str(sock_dir / "orchard.sock"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "daemon"), str(ROOT)]),
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    return env


@dataclass
class Daemon:
    """A running `orchard serve` process and where its files are."""

    env: dict[str, str]
    proc: subprocess.Popen | None

    @property
    def socket(self) -> Path:
        return Path(self.env["ORCHARD_SOCKET"])

    @property
    def config(self) -> Path:
        return Path(self.env["ORCHARD_CONFIG"])

    @property
    def log(self) -> Path:
        return Path(self.env["ORCHARD_STATE"]) / "daemon.log"

    def start(self, *extra: str) -> Daemon:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchard", "serve", "--log-level", "debug", *extra],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for_socket(self.socket, self.proc)
        return self

    def stop(self, timeout: float = 10) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args: str, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run the real `orchard` command line against this daemon."""
        return subprocess.run(
            [sys.executable, "-m", "orchard", *args],
            env=self.env,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    async def client(self) -> RawClient:
        return await RawClient.open_unix(self.socket)

    def write_config(self, text: str) -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text)


def wait_for_socket(path: Path, proc: subprocess.Popen | None = None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise RuntimeError(f"daemon exited with {proc.returncode}: {err.decode()[-2000:]}")
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(path))
            return
        except OSError:
            time.sleep(0.02)
        finally:
            s.close()
    raise TimeoutError(f"no daemon at {path}")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    environment = clean_env(tmp_path)
    yield environment
    shutil.rmtree(Path(environment["ORCHARD_SOCKET"]).parent, ignore_errors=True)


@pytest.fixture
def daemon_process(env: dict[str, str]) -> Iterator[Daemon]:
    """A daemon not yet started (for tests that control its start)."""
    d = Daemon(env, None)
    yield d
    d.stop()


@pytest.fixture
def daemon(daemon_process: Daemon) -> Daemon:
    return daemon_process.start()


@pytest.fixture
async def client(daemon: Daemon):
    c = await daemon.client()
    yield c
    await c.close()


@pytest.fixture
def fakes() -> Iterator[Callable[..., FakeProvider]]:
    """A factory of started fake providers on 127.0.0.1, all stopped at teardown."""
    started: list[FakeProvider] = []

    def make(type: str = "openai", **switches: Any) -> FakeProvider:
        fake = FakeProvider(type, **switches).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


def pytest_configure(config: pytest.Config) -> None:
    # The tests must never reach beyond loopback, whatever the machine's settings.
    for name in _STRIP:
        os.environ.pop(name, None)
