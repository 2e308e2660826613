"""Turn the text of ``config.toml`` into a validated :class:`Config`, or a precise problem.

Owns parsing (tomlkit, which keeps comments and layout for later edits),
validation against the Structs in :mod:`orchard.config.schema`, and the
translation of every failure into a :class:`~orchard.errors.ConfigInvalid`
with a 1-based line and column. msgspec reports a ``$.path`` but no position,
so :func:`locate` maps a path back to where it is written in the file.

The daemon and ``orchard config validate`` both call :func:`load_text`, so a
person sees the same message in both places.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Array, InlineTable, Table

from orchard.config.schema import CAPABILITIES, PROVIDER_TYPES, Config, ProviderConfig, model_id
from orchard.errors import ConfigInvalid

PathPart = str | int

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SECRET_PARAM = re.compile(r"key|token|secret|password|auth|signature|sig$", re.IGNORECASE)
_PATH_RE = re.compile(r"`\$((?:\.[A-Za-z0-9_-]+|\[\d+\]|\[\.\.\.\])*)`")
_CHOICES = {"type": ("provider type", PROVIDER_TYPES), "capabilities": ("capability", CAPABILITIES)}
_TYPE_WORDS = {
    "`str`": "a string",
    "`int`": "an integer",
    "`float`": "a number",
    "`bool`": "true or false",
    "`array`": "an array",
    "`object`": "a table",
    "`null`": "nothing",
}


def load_text(text: str, path: Path) -> tuple[tomlkit.TOMLDocument, Config]:
    """Parse and validate; raise ConfigInvalid naming the line and column."""
    doc = parse(text, path)
    return doc, validate(doc, text, path)


def parse(text: str, path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        # tomlkit's message ends with " at line L col C"; keep only the reason.
        reason = re.sub(r"\s+at line \d+ col \d+$", "", str(exc))
        raise _problem(path, exc.line, max(exc.col, 1), f"TOML syntax error: {reason}") from None


def validate(doc: tomlkit.TOMLDocument, text: str, path: Path) -> Config:
    data = doc.unwrap()
    providers = data.pop("providers", {})
    try:
        top = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise _from_msgspec(exc, [], doc, text, path) from None
    if not isinstance(providers, dict):
        raise _at(["providers"], "`providers` must be a table of providers", doc, text, path)
    checked: dict[str, ProviderConfig] = {}
    for pid, raw in providers.items():
        where: list[PathPart] = ["providers", pid]
        if not _ID_RE.match(pid):
            raise _at(
                where,
                f"provider id `{pid}` may use only lower-case letters, digits, `-` and `_`",
                doc,
                text,
                path,
            )
        try:
            provider = msgspec.convert(raw, ProviderConfig)
        except msgspec.ValidationError as exc:
            raise _from_msgspec(exc, where, doc, text, path) from None
        _check_provider(provider, where, doc, text, path)
        checked[pid] = provider
    return Config(default_model=top.default_model, providers=checked)


def _check_provider(p: ProviderConfig, where: list[PathPart], doc, text: str, path: Path) -> None:
    """Rules the schema cannot say: addresses are URLs, model ids are unique."""
    if p.api_address.strip():
        parts = urlsplit(p.api_address.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _at(
                [*where, "api_address"],
                f"api_address `{p.api_address}` is not an http(s) URL, e.g. `http://localhost:8000/`",
                doc,
                text,
                path,
            )
        # The address is shown to every client; a key must live in api_key, which never is.
        secret_param = [k for k, _ in parse_qsl(parts.query) if _SECRET_PARAM.search(k)]
        if "@" in parts.netloc or secret_param:
            what = f"the query parameter `{secret_param[0]}`" if secret_param else "a user name or password"
            raise _at(
                [*where, "api_address"],
                f"api_address holds {what}, which would be shown to every client; "
                "put the key in `api_key` (e.g. `orchard provider set-key`) and remove it from the address",
                doc,
                text,
                path,
            )
    if p.proxy:
        parts = urlsplit(p.proxy)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _at(
                [*where, "proxy"],
                f"proxy `{p.proxy}` is not an http(s) proxy URL, e.g. `http://127.0.0.1:3128`",
                doc,
                text,
                path,
            )
    seen: set[str] = set()
    for i, entry in enumerate(p.models):
        mid = model_id(entry)
        if mid in seen:
            raise _at([*where, "models", i], f"model `{mid}` is listed twice", doc, text, path)
        seen.add(mid)


def _from_msgspec(exc: msgspec.ValidationError, prefix: list[PathPart], doc, text: str, path: Path):
    message = str(exc)
    parts: list[PathPart] = list(prefix)
    match = _PATH_RE.search(message)
    if match:
        parts += _split_path(match.group(1))
        message = message[: match.start()].rstrip(" -").removesuffix(" - at").strip()
        message = re.sub(r"\s*-\s*at\s*$", "", message)
        message = re.sub(r"\s+in\s*$", "", message)
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    missing = re.match(r"Object missing required field `([^`]+)`", message)
    if unknown:
        parts.append(unknown.group(1))
        message = f"unknown key `{unknown.group(1)}`; check its spelling or remove it"
    elif missing:
        message = f"missing key `{missing.group(1)}`"
    elif enum := re.match(r"Invalid enum value '([^']*)'", message):
        field = next((p for p in reversed(parts) if isinstance(p, str)), "")
        noun, choices = _CHOICES.get(field, ("value", ()))
        message = f"`{enum.group(1)}` is not a known {noun}"
        if choices:
            message += f"; use one of: {', '.join(choices)}"
    else:
        message = re.sub(r"`([a-z]+(?: \| [a-z]+)+)`", _union_words, message)
        for word, plain in _TYPE_WORDS.items():
            message = message.replace(word, plain)
        message = message[:1].lower() + message[1:]
        if parts:
            message = f"`{_dotted(parts)}`: {message}"
    return _at(parts, message, doc, text, path)


def _union_words(match: re.Match) -> str:
    words = [_TYPE_WORDS.get(f"`{t}`", t) for t in match.group(1).split(" | ") if t != "null"]
    return " or ".join(words)


def _split_path(s: str) -> list[PathPart]:
    out: list[PathPart] = []
    for name, index in re.findall(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]", s):
        out.append(name if name else int(index))
    return out


def _dotted(parts: list[PathPart]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _at(parts: list[PathPart], message: str, doc, text: str, path: Path) -> ConfigInvalid:
    line, column = locate(doc, text, parts)
    return _problem(path, line, column, message, key=_dotted(parts) or None)


def _problem(path: Path, line: int, column: int, message: str, key: str | None = None) -> ConfigInvalid:
    return ConfigInvalid(
        f"{path}:{line}:{column}: {message}",
        hint=f"Fix line {line} of {path} (a running daemon keeps its last good config meanwhile).",
        path=str(path),
        line=line,
        column=column,
        key=key,
        reason=message,
    )


# -- locating a path in the text ------------------------------------------------

_MARK = "__orchard_locate_3f9c1e__"


def locate(doc: tomlkit.TOMLDocument, text: str, parts: list[PathPart]) -> tuple[int, int]:
    """The (line, column) where the value at ``parts`` is written; 1-based.

    Works by replacing that value, in a copy of the document, with a marker
    string and finding the marker in the dump: tomlkit leaves every other line
    as it was, so the marker sits where the value starts. A table written as a
    ``[header]`` is found by its header instead. Falls back to the nearest
    enclosing path that can be found, and finally to line 1.
    """
    for depth in range(len(parts), 0, -1):
        found = _locate_exact(text, parts[:depth])
        if found:
            return found
    return (1, 1)


def _locate_exact(text: str, parts: list[PathPart]) -> tuple[int, int] | None:
    copy = tomlkit.parse(text)
    parent: Any = copy
    try:
        for p in parts[:-1]:
            parent = parent[p]
        last = parts[-1]
        current = parent[last]
    except (KeyError, IndexError, TypeError, tomlkit.exceptions.NonExistentKey):
        return None
    if isinstance(current, (Table, AoT)) and not isinstance(current, InlineTable):
        return _find_header(text, parts)
    try:
        parent[last] = _MARK
        dumped = tomlkit.dumps(copy)
    except Exception:  # tomlkit refuses some replacements (e.g. inside an AoT)
        return None
    for n, line in enumerate(dumped.splitlines(), start=1):
        col = line.find(_MARK)
        if col < 0:
            continue
        if isinstance(last, str) and not isinstance(parent, Array):
            key_col = line.rfind(last, 0, col)
            if key_col >= 0:
                # point at the key, quoted or bare
                if key_col > 0 and line[key_col - 1] in "\"'":
                    key_col -= 1
                return (n, key_col + 1)
        return (n, max(col, 0))  # the opening quote of the marker is where the value began
    return None


def _find_header(text: str, parts: list[PathPart]) -> tuple[int, int] | None:
    want = [str(p) for p in parts if not isinstance(p, int)]
    for n, line in enumerate(text.splitlines(), start=1):
        m = re.match(r"^(\s*)\[\[?([^\[\]]+)\]\]?", line)
        if not m:
            continue
        keys = [k.strip().strip("\"'") for k in m.group(2).split(".")]
        if keys == want:
            return (n, len(m.group(1)) + 1)
    return None
