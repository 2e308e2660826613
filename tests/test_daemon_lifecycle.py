"""One daemon per user: the socket, the lock, the connect bridge, status, stop and the log."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path


from tests.conftest import Daemon, wait_for_socket


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_frames(data: bytes) -> list[dict]:
    out = []
    while data:
        header, _, rest = data.partition(b"\r\n\r\n")
        length = int(header.split(b":")[1])
        out.append(json.loads(rest[:length]))
        data = rest[length:]
    return out


def test_socket_and_its_directory_are_private(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.socket.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(daemon.log.stat().st_mode) == 0o600


def test_a_second_daemon_refuses_and_names_the_pid(daemon: Daemon) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "orchard", "serve"], env=daemon.env, capture_output=True, text=True, timeout=20
    )
    assert second.returncode == 3
    assert f"pid {daemon.proc.pid}" in second.stderr
    assert "orchard stop" in second.stderr
    # The first one is unharmed.
    assert json.loads(daemon.cli("status", "--json").stdout)["pid"] == daemon.proc.pid


def test_a_stale_socket_is_replaced(daemon_process: Daemon) -> None:
    first = daemon_process.start()
    first.kill9()  # leaves the socket file behind, refusing connections
    assert first.socket.exists()
    second = Daemon(first.env, None).start()
    try:
        st = json.loads(second.cli("status", "--json").stdout)
        assert st["running"] and st["pid"] == second.proc.pid
    finally:
        second.stop()


def test_stop_is_graceful_and_cleans_up(daemon: Daemon) -> None:
    out = daemon.cli("stop")
    assert out.returncode == 0 and "Stopped" in out.stdout
    assert daemon.proc.wait(10) == 0
    assert not daemon.socket.exists()
    status = daemon.cli("status")
    assert status.returncode == 1 and "not running" in status.stdout


def test_status_is_readable_and_json(daemon: Daemon) -> None:
    text = daemon.cli("status")
    assert text.returncode == 0
    assert f"pid {daemon.proc.pid}" in text.stdout
    assert str(daemon.log) in text.stdout and str(daemon.config) in text.stdout
    data = json.loads(daemon.cli("status", "--json").stdout)
    assert data["socketPath"] == str(daemon.socket) and data["logPath"] == str(daemon.log)


def test_the_log_has_one_line_per_request(daemon: Daemon) -> None:
    daemon.cli("provider", "list")
    deadline = time.monotonic() + 5
    while "provider/list" not in daemon.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(l for l in daemon.log.read_text().splitlines() if "provider/list" in l)
    assert " ok " in line and line.endswith("ms")


def test_a_long_socket_path_falls_back_to_a_short_one(env: dict[str, str], tmp_path: Path) -> None:
    long_dir = tmp_path / ("d" * 60) / ("e" * 60)
    env = dict(env, ORCHARD_SOCKET=str(long_dir / "orchard.sock"))
    d = Daemon(env, None)
    d.proc = subprocess.Popen([sys.executable, "-m", "orchard", "serve"], env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            out = d.cli("status", "--json")
            if out.returncode == 0:
                break
            time.sleep(0.1)
        st = json.loads(out.stdout)
        assert len(st["socketPath"].encode()) <= 107
        assert st["socketPath"] != str(long_dir / "orchard.sock")
    finally:
        d.stop()


def test_connect_bridges_stdio_and_starts_the_daemon(env: dict[str, str]) -> None:
    sock = Path(env["ORCHARD_SOCKET"])
    assert not sock.exists()
    messages = frame({"jsonrpc": "2.0", "id": 1, "method": "daemon/status"}) + frame(
        {"jsonrpc": "2.0", "id": 2, "method": "provider/add", "params": {"name": "Bridge", "type": "openai"}}
    )
    out = subprocess.run(
        [sys.executable, "-m", "orchard", "connect"], env=env, input=messages, capture_output=True, timeout=30
    )
    try:
        assert out.returncode == 0, out.stderr
        replies = {m["id"]: m for m in read_frames(out.stdout) if "id" in m}
        assert replies[1]["result"]["socketPath"] == str(sock)
        assert replies[2]["result"]["provider"]["id"] == "bridge"
        # The daemon it started outlives the bridge.
        wait_for_socket(sock)
    finally:
        subprocess.run([sys.executable, "-m", "orchard", "stop"], env=env, capture_output=True, timeout=20)


def test_simultaneous_connects_end_with_exactly_one_daemon(env: dict[str, str]) -> None:
    status = frame({"jsonrpc": "2.0", "id": 1, "method": "daemon/status"})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchard", "connect"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    try:
        pids = set()
        for p in procs:
            out, err = p.communicate(status, timeout=40)
            assert p.returncode == 0, err
            pids.add(read_frames(out)[0]["result"]["pid"])
        assert len(pids) == 1
        # ...and, once the daemons that lost the race have exited, exactly one
        # `orchard serve` process is left for this socket.
        winner = str(pids.pop())
        deadline = time.monotonic() + 20
        while True:
            alive = [
                str(pid) for pid in _serving_pids() if _env_of(pid).get("ORCHARD_SOCKET") == env["ORCHARD_SOCKET"]
            ]
            if alive == [winner] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert alive == [winner]
    finally:
        subprocess.run([sys.executable, "-m", "orchard", "stop"], env=env, capture_output=True, timeout=20)


def _serving_pids() -> list[int]:
    """Processes running `orchard serve` (read from /proc: no pgrep needed)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"orchard" in argv and b"serve" in argv:
            pids.append(int(entry.name))
    return pids


def _env_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_a_client_that_vanishes_leaves_nothing_behind(daemon: Daemon) -> None:
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(daemon.socket))
        s.sendall(frame({"jsonrpc": "2.0", "id": 1, "method": "daemon/status"})[:20])  # half a frame
        s.close()
    st = json.loads(daemon.cli("status", "--json").stdout)
    deadline = time.monotonic() + 5
    while st["clients"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
        st = json.loads(daemon.cli("status", "--json").stdout)
    assert st["clients"] == 1  # only the status command itself


def test_sigterm_stops_cleanly(daemon: Daemon) -> None:
    assert daemon.stop() == 0
    assert not daemon.socket.exists()
