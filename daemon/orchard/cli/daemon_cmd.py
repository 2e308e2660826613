"""`orchard status` and `orchard stop`."""

from __future__ import annotations

import time
from pathlib import Path

from orchard import paths
from orchard.cli import output
from orchard.cli.client import Client, DaemonUnavailable


def status(socket_path: Path, *, as_json: bool) -> int:
    try:
        client = Client.connect(socket_path, start=False)
    except DaemonUnavailable:
        if as_json:
            output.print_json({"running": False, "socketPath": str(socket_path), "logPath": str(paths.log_file())})
        else:
            print(f"Orchard daemon: not running (socket {socket_path}).")
            print("Any `orchard` command starts it; `orchard serve` runs it in the foreground.")
            print(f"log: {paths.log_file()}")
        return 1
    with client:
        st = client.request("daemon/status")
    if as_json:
        output.print_json({"running": True, **st})
        return 0
    print(f"Orchard daemon {st['version']}: running, pid {st['pid']}, up {_duration(st['uptimeSeconds'])}")
    print(f"  socket    {st['socketPath']}")
    print(f"  config    {st['configPath']} (revision {st['revision']})")
    print(f"  data      {st['dataPath']}")
    print(f"  log       {st['logPath']}")
    print(f"  clients   {st['clients']} connected (this one included)")
    if st.get("configProblem"):
        pr = st["configProblem"]
        print(f"  config problem: {pr['message']}")
        print("  (the daemon keeps using the last good config until the file is fixed)")
    return 0


def stop(socket_path: Path) -> int:
    try:
        client = Client.connect(socket_path, start=False)
    except DaemonUnavailable:
        print("Orchard daemon: not running.")
        return 0
    with client:
        pid = client.request("daemon/status")["pid"]
        client.request("daemon/stop")
    deadline = time.monotonic() + 10
    while socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if socket_path.exists():
        output.error(f"The daemon (pid {pid}) is still running after 10 s.", f"Stop it with `kill {pid}`.")
        return 1
    print(f"Stopped the Orchard daemon (pid {pid}).")
    return 0


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"
