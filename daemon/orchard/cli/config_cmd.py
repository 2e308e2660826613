"""`orchard config path|edit|validate`: the config file, without going through the daemon.

`validate` uses the daemon's own loader, so it prints the same message
(file, line, column, what to do) the daemon announces for a bad edit.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from orchard.cli import output


def validate(path: Path, *, quiet: bool = False) -> int:
    """Read and check the file exactly as the daemon does, changing nothing."""
    from orchard.config.schema import Config
    from orchard.config.service import read_text
    from orchard.config.validate import load_text
    from orchard.errors import ConfigInvalid

    try:
        text = read_text(path, tighten=False)
        config = load_text(text, path)[1] if text.strip() else Config()
    except ConfigInvalid as problem:
        output.error(problem.message, problem.hint)
        return 1
    if not quiet:
        n = len(config.providers)
        where = path if path.exists() else f"{path} (not created yet: empty config)"
        print(f"{where}: valid, {n} provider{'s' if n != 1 else ''}.")
    return 0


def edit(path: Path) -> int:
    from orchard.config.edit import HEADER
    from orchard.config.service import write_schema

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(HEADER)
    write_schema(path.resolve().parent)  # what its `#:schema` line points at
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    while True:
        try:
            subprocess.run([*shlex.split(editor), str(path)], check=False)
        except FileNotFoundError:
            output.error(f"The editor `{editor}` was not found.", "Set $EDITOR, e.g. `export EDITOR=nano`.")
            return 1
        if validate(path) == 0:
            return 0
        if not sys.stdin.isatty():
            return 1
        answer = input("The running daemon keeps the last good config until this is fixed. Edit again? [Y/n] ")
        if answer.strip().lower() in ("n", "no"):
            return 1
