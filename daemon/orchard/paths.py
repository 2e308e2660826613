"""Where Orchard keeps its files, and the environment variables that move them.

One place decides every path, so the daemon, the command line and the tests
agree. platformdirs gives the per-user defaults; each can be overridden:

=================  ===========================================  =====================
what               default (Linux)                              override
=================  ===========================================  =====================
config file        ``~/.config/orchard/config.toml``            ``ORCHARD_CONFIG``
data (chats)       ``~/.local/share/orchard``                   ``ORCHARD_DATA``
log                ``~/.local/state/orchard/daemon.log``        ``ORCHARD_STATE``
socket             ``$XDG_RUNTIME_DIR/orchard/orchard.sock``    ``ORCHARD_SOCKET``
=================  ===========================================  =====================

Nothing here creates files except :func:`ensure_private_dir`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path

import platformdirs

APP = "orchard"

# sun_path is 108 bytes on Linux (107 usable) and 104 on macOS (103 usable).
MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107


def config_file() -> Path:
    env = os.environ.get("ORCHARD_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def data_dir() -> Path:
    env = os.environ.get("ORCHARD_DATA")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP))


def state_dir() -> Path:
    env = os.environ.get("ORCHARD_STATE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_state_dir(APP))


def log_file() -> Path:
    return state_dir() / "daemon.log"


def runtime_dir() -> Path:
    # platformdirs falls back to /tmp/runtime-<uid> (0700) when XDG_RUNTIME_DIR is
    # unset, with a warning on stderr that would only be noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir(APP))


def socket_path() -> Path:
    """The daemon's socket; a long path falls back to a short one under /tmp.

    The fallback is derived from the long path (a hash), so the daemon and
    every client pick the same one without talking to each other.
    """
    env = os.environ.get("ORCHARD_SOCKET")
    path = Path(env).expanduser() if env else runtime_dir() / "orchard.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"orchard-{os.getuid()}" / f"{digest}.sock"


def lock_file(sock: Path) -> Path:
    """The lock the running daemon holds; it also records that daemon's pid."""
    return sock.with_name(sock.name + ".lock")


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable only by the user; tighten it if it exists.

    Refuses a directory owned by someone else: a socket or a key file placed
    there could be read or replaced by them.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user; choose another directory")
    if stat.S_IMODE(st.st_mode) & 0o077:
        path.chmod(0o700)
    return path
