"""The config service: the one owner of ``config.toml`` inside the daemon.

It holds the last good config and its ``revision`` (a counter that goes up
with every change applied, from a client or from the file), applies
protocol edits through tomlkit and writes them atomically, watches the
file's directory and reloads a saved hand edit within milliseconds, and
publishes what happened as events (:class:`ConfigChanged`,
:class:`ConfigFailed`) for the transport to fan out.

Rules it keeps:

- a bad edit on disk never replaces the last good config, and the daemon
  never writes over a file that is invalid (writes are refused, naming the
  line to fix);
- a write naming a stale revision is refused instead of overwriting;
- before every write the file is read again, so a save that the watcher has
  not reported yet is never lost;
- its own writes do not cause a second reload (the content hash is the same).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import tomlkit

from orchard.config import edit
from orchard.config.schema import Config, ProviderConfig, json_schema
from orchard.config.validate import load_text
from orchard.errors import ConfigInvalid, InvalidParams, StaleRevision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfigChanged:
    revision: int
    source: str  # "file" | "client"
    providers: list[str]  # ids whose settings changed, were added or removed


@dataclass(frozen=True)
class ConfigFailed:
    path: str
    line: int
    column: int
    message: str


Event = ConfigChanged | ConfigFailed


@dataclass
class _State:
    text: str = ""
    digest: str = ""
    config: Config = field(default_factory=Config)


class ConfigService:
    """Owns the config file: load, validate, edit, write, watch."""

    def __init__(self, path: Path, publish: Callable[[Event], None] | None = None) -> None:
        self.path = path
        self.revision = 0  # the first load makes it 1
        self.problem: ConfigInvalid | None = None
        self._state = _State()
        self._bad_digest: str | None = None
        self._publish = publish or (lambda event: None)
        self._lock = asyncio.Lock()
        self._on_change: list[Callable[[Config, list[str]], None]] = []

    # -- reading -------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._state.config

    def provider(self, pid: str) -> ProviderConfig | None:
        return self._state.config.providers.get(pid)

    def on_change(self, callback: Callable[[Config, list[str]], None]) -> None:
        """Call ``callback(config, changed_ids)`` after every applied change."""
        self._on_change.append(callback)

    def load(self) -> None:
        """Initial load at start-up. A bad file is reported, never fatal."""
        self._sync_from_disk(source="file", announce=False)
        if self.path.exists():
            write_schema(self.path.resolve().parent)

    # -- writing -------------------------------------------------------------

    async def edit(
        self,
        change: Callable[[tomlkit.TOMLDocument], Any],
        *,
        revision: int | None = None,
    ) -> tuple[Any, int]:
        """Apply ``change`` to the document, validate, write; return (its result, new revision).

        ``revision``, when given, must be the current one, or StaleRevision is raised.
        """
        async with self._lock:
            # A save the watcher has not reported yet must be seen before we write.
            self._sync_from_disk(source="file", announce=True)
            if self.problem is not None:
                raise ConfigInvalid(
                    f"The config file has an error, so Orchard will not write to it: {self.problem.message}",
                    hint=self.problem.hint,
                    **self.problem.data,
                )
            if revision is not None and revision != self.revision:
                raise StaleRevision(
                    f"The config changed since you read it (you have revision {revision}, "
                    f"it is now {self.revision}).",
                    hint="Reload the provider and apply your change again.",
                    revision=self.revision,
                )
            text = self._state.text if self._state.text.strip() else edit.HEADER
            doc = tomlkit.parse(text)
            result = change(doc)
            new_text = doc.as_string().rstrip("\n") + "\n"
            # Validate what we are about to write exactly as a hand edit would be.
            try:
                _, config = load_text(new_text, self.path)
            except ConfigInvalid as exc:
                raise InvalidParams(
                    f"That change would make the config invalid: {exc.data.get('reason', exc.message)}",
                    hint="Nothing was written; correct the value and try again.",
                    key=exc.data.get("key"),
                ) from None
            if new_text == self._state.text:
                return result, self.revision
            self._write(new_text)
            changed = _changed_providers(self._state.config, config)
            self._apply(new_text, config)
            self._announce(ConfigChanged(self.revision, "client", changed), config, changed)
            return result, self.revision

    def _write(self, text: str) -> None:
        target = self.path.resolve() if self.path.is_symlink() else self.path
        directory = target.parent
        if not directory.exists():
            directory.mkdir(parents=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)  # it may hold API keys
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        write_schema(directory)

    # -- reloading ------------------------------------------------------------

    def reload(self) -> None:
        """The file may have changed on disk (called by the watcher)."""
        self._sync_from_disk(source="file", announce=True)

    def _sync_from_disk(self, *, source: str, announce: bool) -> None:
        try:
            text = self._read()
        except ConfigInvalid as problem:
            self._fail(problem, announce)
            return
        digest = _digest(text)
        if digest == self._state.digest and self.problem is None:
            return  # our own write, or a save that changed nothing
        if digest == self._bad_digest:
            return  # the same bad text again (one save can raise several events)
        try:
            _, config = load_text(text, self.path) if text.strip() else (None, Config())
        except ConfigInvalid as problem:
            self._bad_digest = digest
            self._fail(problem, announce)
            return
        self._bad_digest = None
        was_invalid = self.problem is not None
        self.problem = None
        if was_invalid:
            log.info("config file is valid again")
        changed = _changed_providers(self._state.config, config)
        self._apply(text, config)
        if announce:
            log.info("config reloaded from file, revision %d, providers changed: %s", self.revision, changed)
            self._announce(ConfigChanged(self.revision, source, changed), config, changed)

    def _read(self) -> str:
        return read_text(self.path, tighten=True)

    def _apply(self, text: str, config: Config) -> None:
        self._state = _State(text=text, digest=_digest(text), config=config)
        self.revision += 1

    def _fail(self, problem: ConfigInvalid, announce: bool) -> None:
        # Announced once per distinct problem: the once-a-second re-check of a file
        # that cannot be read must not repeat it every second.
        first = self.problem is None or self.problem.message != problem.message
        self.problem = problem
        if not first:
            return
        log.warning("config file invalid, keeping the last good config: %s", problem.message)
        if announce:
            data = problem.data
            self._publish(
                ConfigFailed(
                    path=str(data.get("path", self.path)),
                    line=int(data.get("line", 1)),
                    column=int(data.get("column", 1)),
                    message=problem.message,
                )
            )

    def _announce(self, event: ConfigChanged, config: Config, changed: list[str]) -> None:
        for callback in self._on_change:
            try:
                callback(config, changed)
            except Exception:
                log.exception("config change listener failed")
        self._publish(event)

    # -- watching ---------------------------------------------------------------

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload on every save until ``stop`` is set.

        Watches the directory, not the file: a watch on the file itself dies
        after a save by rename (editors' and our own atomic writes).
        """
        import watchfiles

        dirs = {self.path.parent}
        if self.path.is_symlink():
            dirs.add(self.path.resolve().parent)
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        names = {self.path.name, self.path.resolve().name}

        def only_config(_change: watchfiles.Change, path: str) -> bool:
            return os.path.basename(path) in names

        # Besides every change event, the file is also checked once a second
        # (yield_on_timeout): that catches a save made while the watch was still
        # being set up, and any event a filesystem fails to deliver. A check of an
        # unchanged file is one small read and a hash.
        async for _changes in watchfiles.awatch(
            *dirs,
            watch_filter=only_config,
            debounce=20,
            step=5,
            stop_event=stop,
            recursive=False,
            ignore_permission_denied=True,
            rust_timeout=1000,
            yield_on_timeout=True,
        ):
            self.reload()


def read_text(path: Path, *, tighten: bool) -> str:
    """The config file's text ("" when there is none yet), or ConfigInvalid saying why it cannot be read.

    With ``tighten``, a file others can read is made readable only by its owner: it may hold keys.
    """
    if path.is_symlink() and not path.exists():
        raise ConfigInvalid(
            f"{path} is a link to {os.readlink(path)}, which does not exist.",
            hint="Point the link at an existing file, or remove it to start a new config.",
            path=str(path),
            line=1,
            column=1,
        )
    try:
        st = path.stat()
    except FileNotFoundError:
        return ""  # no file yet: an empty config, created on the first write
    if stat.S_ISDIR(st.st_mode):
        raise ConfigInvalid(
            f"{path} is a directory, not a config file.",
            hint="Remove it, or set ORCHARD_CONFIG to a file path.",
            path=str(path),
            line=1,
            column=1,
        )
    try:
        data = path.read_bytes()
    except PermissionError:
        raise ConfigInvalid(
            f"{path} cannot be read: permission denied.",
            hint=f"Run `chmod 600 {path}` as its owner.",
            path=str(path),
            line=1,
            column=1,
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigInvalid(
            f"{path}:{line}:{column}: the file is not UTF-8 text.",
            hint=f"Save it as UTF-8 and fix line {line}.",
            path=str(path),
            line=line,
            column=column,
        ) from None
    if tighten and stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.getuid():
        # It may hold API keys: readable only by its owner.
        path.chmod(stat.S_IMODE(st.st_mode) & 0o700)
        log.warning("config file was readable by others; made it readable only by you")
    return text.removeprefix("\ufeff")


def write_schema(directory: Path) -> None:
    """Keep ``config.schema.json`` beside the config, for its ``#:schema ./config.schema.json`` line."""
    schema = msgspec.json.format(msgspec.json.encode(json_schema()), indent=2) + b"\n"
    target = directory / "config.schema.json"
    try:
        if target.exists() and target.read_bytes() == schema:
            return
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(schema)
        os.replace(tmp, target)
    except OSError as exc:  # a read-only directory still gets a working config
        log.warning("could not write %s: %s", target, exc)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _changed_providers(old: Config, new: Config) -> list[str]:
    ids = set(old.providers) | set(new.providers)
    return sorted(i for i in ids if old.providers.get(i) != new.providers.get(i))
