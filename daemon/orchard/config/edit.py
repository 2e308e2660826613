"""Edits to the user's config document that touch only the lines they must.

Pure functions over a ``tomlkit`` document: each changes one provider or its
models in place, so the person's comments, key order and blank lines
everywhere else survive a write. The config service validates the result and
writes it; nothing here does I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Table

from orchard.config.schema import PROVIDER_TYPES
from orchard.errors import AlreadyExists, InvalidParams, NotFound

HEADER = """\
#:schema ./config.schema.json
# Orchard's config: your AI providers and their models.
# Edit it by hand or with `orchard provider ...`; the daemon applies a saved
# change at once and reports a bad edit with its line. Keys: docs/config.md.
"""

#: Provider fields in the order they are written for a new provider.
FIELD_ORDER = (
    "name", "type", "enabled", "api_key", "api_address", "api_version",
    "headers", "timeout", "connect_timeout", "proxy", "notes", "models",
)  # fmt: skip


def new_document() -> tomlkit.TOMLDocument:
    return tomlkit.parse(HEADER)


def slug(name: str) -> str:
    """A readable id from a name: `vLLM` → `vllm`, `My OpenAI (work)` → `my-openai-work`."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text or "provider"


def unique_id(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _providers(doc: tomlkit.TOMLDocument, create: bool = False) -> Any:
    if "providers" not in doc:
        if not create:
            return None
        if len(doc.body) and not doc.as_string().endswith("\n\n"):
            doc.add(tomlkit.nl())
        doc["providers"] = tomlkit.table(is_super_table=True)
    return doc["providers"]


def provider_table(doc: tomlkit.TOMLDocument, pid: str) -> Table | InlineTable:
    providers = _providers(doc)
    if providers is None or pid not in providers:
        raise NotFound(
            f"There is no provider `{pid}`.",
            hint="Run `orchard provider list` to see the provider ids.",
            providerId=pid,
        )
    return providers[pid]


def add_provider(doc: tomlkit.TOMLDocument, pid: str, fields: dict[str, Any]) -> None:
    providers = _providers(doc, create=True)
    if pid in providers:
        raise AlreadyExists(f"A provider with id `{pid}` already exists.", hint="Pick another name.")
    table = tomlkit.table()
    for key in FIELD_ORDER:
        if key in fields and fields[key] is not None:
            table[key] = _item(key, fields[key])
    # A blank line before the new table, as a person would leave one.
    text = doc.as_string()
    if text.strip() and not text.endswith("\n\n"):
        table.trivia.indent = "\n" if text.endswith("\n") else "\n\n"
    providers[pid] = table


def update_provider(doc: tomlkit.TOMLDocument, pid: str, fields: dict[str, Any]) -> None:
    """Set each field in ``fields``; a value of None removes the key (back to its default)."""
    table = provider_table(doc, pid)
    for key, value in fields.items():
        if value is None:
            if key in table:
                del table[key]
        elif key in table:
            table[key] = _item(key, value, like=table[key])
        else:
            _add_key(table, key, _item(key, value))


def remove_provider(doc: tomlkit.TOMLDocument, pid: str) -> None:
    """Remove a provider's table; comments at its end, which introduce the next
    table, are kept by moving them to the end of the provider before it."""
    table = provider_table(doc, pid)
    providers = doc["providers"]
    ids = list(providers.keys())
    trailing = _trailing_trivia(table)
    del providers[pid]
    before = providers.get(ids[ids.index(pid) - 1]) if ids.index(pid) > 0 else None
    if trailing and isinstance(before, Table) and not isinstance(before, InlineTable):
        for item in trailing:
            before.value.append(None, item)


def _trailing_trivia(table: Any) -> list[Any]:
    """The comments and blank lines after a table's last key (they belong to what follows)."""
    if not isinstance(table, Table) or isinstance(table, InlineTable):
        return []
    out: list[Any] = []
    for key, item in table.value.body:
        if key is None and isinstance(item, (tomlkit.items.Comment, tomlkit.items.Whitespace)):
            out.append(item)
        else:
            out = []
    return out


def add_models(doc: tomlkit.TOMLDocument, pid: str, ids: list[str]) -> list[str]:
    """Append the ids not yet listed; return the ones actually added."""
    models = _models(doc, pid, create=True)
    present = {_entry_id(m) for m in models}
    added = []
    for mid in ids:
        if mid and mid not in present:
            models.append(_new_entry(models, mid))
            present.add(mid)
            added.append(mid)
    return added


def update_model(doc: tomlkit.TOMLDocument, pid: str, mid: str, fields: dict[str, Any]) -> None:
    """Set name/group/capabilities of one model.

    In a list, a plain id becomes an inline table (and back when nothing but
    the id is left); in ``[[providers.X.models]]`` tables the keys change in place.
    """
    models = _models(doc, pid)
    for i, entry in enumerate(models):
        if _entry_id(entry) != mid:
            continue
        if isinstance(models, AoT):
            for key, value in fields.items():
                if value is None:
                    entry.pop(key, None)
                elif key in entry:
                    entry[key] = value
                else:
                    _add_key(entry, key, value)
            return
        current = {"id": mid} if isinstance(entry, str) else dict(entry.unwrap())
        for key, value in fields.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        if set(current) == {"id"}:
            models[i] = mid
        else:
            inline = tomlkit.inline_table()
            inline.update(current)
            models[i] = inline
        return
    raise _no_model(pid, mid)


def remove_models(doc: tomlkit.TOMLDocument, pid: str, ids: list[str]) -> list[str]:
    models = _models(doc, pid)
    wanted = set(ids)
    removed = []
    for i in range(len(models) - 1, -1, -1):
        mid = _entry_id(models[i])
        if mid in wanted:
            del models[i]
            removed.append(mid)
    if isinstance(models, AoT) and len(models) == 0:
        del provider_table(doc, pid)["models"]  # no tables left: no key, rather than `models = []` out of place
    return sorted(removed, key=ids.index)


def _models(doc: tomlkit.TOMLDocument, pid: str, *, create: bool = False) -> Array | AoT:
    """The provider's models: a list, or ``[[providers.X.models]]`` tables (an array of tables).

    Without ``create``, a provider with no `models` key gives an empty list
    that is not added to the file (so removing from it writes nothing).
    """
    table = provider_table(doc, pid)
    models = table.get("models")
    if models is None:
        models = tomlkit.array()
        if create:
            _add_key(table, "models", models)
            models = table["models"]
    if not isinstance(models, (Array, AoT)):
        raise InvalidParams(f"`models` of provider `{pid}` is not a list in the config file.")
    return models


def _new_entry(models: Array | AoT, mid: str) -> Any:
    if isinstance(models, AoT):
        entry = tomlkit.table()
        entry["id"] = mid
        return entry
    return mid


def _add_key(table: Table | InlineTable, key: str, item: Any) -> None:
    """Add a key after the table's last key, not after its trailing comments.

    A comment below a table's last key usually introduces the next table
    ("# work stuff" above ``[providers.work]``); appending would put the new
    key under that comment, where it reads as belonging to the next table.
    """
    last = None
    if isinstance(table, Table):
        for k, v in table.value.body:
            if k is not None and not isinstance(v, (Table, AoT)):
                last = k
    if last is None:
        table[key] = item
        return
    try:
        table.value._insert_after(last, key, item)  # tomlkit has no public insert
    except (AttributeError, TypeError):
        table[key] = item


def _entry_id(entry: Any) -> str:
    return str(entry) if isinstance(entry, str) else str(entry.get("id", ""))


def _no_model(pid: str, mid: str) -> NotFound:
    return NotFound(
        f"Provider `{pid}` has no model `{mid}`.",
        hint=f"Run `orchard provider list` to see its models, or `orchard model add {pid} {mid}`.",
        providerId=pid,
        model=mid,
    )


def _item(key: str, value: Any, like: Any = None) -> Any:
    if key == "type" and value not in PROVIDER_TYPES:
        raise InvalidParams(f"`{value}` is not a provider type; use one of: {', '.join(PROVIDER_TYPES)}.")
    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        inline.update(value)
        return inline
    if isinstance(value, list):
        arr = tomlkit.array()
        arr.extend(value)
        if isinstance(like, Array) and like.as_string().count("\n"):
            arr.multiline(True)
        return arr
    return value
