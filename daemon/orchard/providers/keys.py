"""API keys: references, lazy resolution, previews, and rotation between several keys.

A key in the config is one of:

* a literal key (``sk-...``), used as is; ``""`` is a valid key meaning "send
  no auth header" (local servers such as vLLM or llama.cpp need none);
* ``env:NAME``: the value of environment variable NAME;
* ``cmd:prog arg ...``: the first line of a command's output, stripped (a
  password manager: ``pass show openai``), run without a shell, 10 s limit.

References are resolved only when a request needs the key, cached in a
:class:`KeyCache` (shared by the daemon across provider rebuilds, so a
password manager is not asked again on every config edit), and resolved again
once when the provider answers 401 (the key may have been rotated).

Nothing in this module lets a resolved value out: reprs, previews and error
messages use the reference or a few characters of a literal key.
"""

from __future__ import annotations

import asyncio
import os
import shlex

from ..errors import ProviderUnavailable

COMMAND_TIMEOUT = 10.0


def is_reference(value: str) -> bool:
    return value.startswith(("env:", "cmd:"))


def preview(value: str) -> str:
    """A safe label for a key: `sk-…9f2c` for long literals, the reference for env:/cmd:.

    Short literal keys get no characters at all: a few characters of a short
    key are a real part of it.
    """
    if value == "":
        return "(no key)"
    if is_reference(value):
        return value
    if len(value) >= 20:
        return f"{value[:3]}…{value[-4:]}"
    return "…"


def split_keys(text: str) -> tuple[str, ...]:
    """Cherry's several-keys syntax: comma-separated, `\\,` for a comma inside a key."""
    keys, cur, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] == ",":
            cur.append(",")
            i += 2
            continue
        if text[i] == ",":
            keys.append("".join(cur).strip())
            cur = []
        else:
            cur.append(text[i])
        i += 1
    keys.append("".join(cur).strip())
    return tuple(k for k in keys if k) or ("",)


class KeyCache:
    """Resolved values of env:/cmd: references, shared by every provider client."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"KeyCache(<{len(self._values)} resolved>)"

    def forget(self, ref: str | None = None) -> None:
        """Drop one cached value, or all of them."""
        if ref is None:
            self._values.clear()
        else:
            self._values.pop(ref, None)

    async def resolve(self, value: str, *, provider_id: str, refresh: bool = False) -> str:
        """The key to send for a configured value; literals come back unchanged."""
        if not is_reference(value):
            return value
        lock = self._locks.setdefault(value, asyncio.Lock())
        async with lock:  # one password-manager prompt, however many requests wait
            if not refresh and value in self._values:
                return self._values[value]
            if value.startswith("env:"):
                resolved = _from_env(value[4:], provider_id)
            else:
                resolved = await _from_command(value[4:], provider_id)
            self._values[value] = resolved
            return resolved


def _from_env(name: str, provider_id: str) -> str:
    name = name.strip()
    if name not in os.environ:
        raise ProviderUnavailable(
            f"Provider {provider_id!r}: its API key comes from the environment variable "
            f"{name}, which is not set in the daemon's environment.",
            hint=f"set {name} where the daemon starts (then restart it), or change the key "
            f"with `orchard provider set-key {provider_id}`",
            providerId=provider_id,
        )
    return os.environ[name].strip()


async def _from_command(command: str, provider_id: str) -> str:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        argv, problem = [], f"it cannot be parsed ({exc})"
    else:
        problem = "it is empty" if not argv else ""
    hint = f"run `{command}` yourself to see what it says, or change the key with `orchard provider set-key {provider_id}`"
    if argv:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            problem = f"it could not be started ({exc.strerror or exc})"
        else:
            try:
                out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
            except asyncio.TimeoutError:
                problem = f"it did not finish within {COMMAND_TIMEOUT:g} s"
            else:
                # The first line only: `pass` and friends keep notes below the secret,
                # and a newline in a header value would be refused anyway.
                value = (out.decode("utf-8", "replace").strip().splitlines() or [""])[0].strip()
                if proc.returncode == 0 and value:
                    return value
                last = (err.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:200]
                if proc.returncode:
                    problem = f"it exited with status {proc.returncode}" + (f": {last}" if last else "")
                else:
                    problem = "it printed nothing"
            finally:
                if proc.returncode is None:  # timed out or we were cancelled
                    proc.kill()
                    await proc.wait()
    raise ProviderUnavailable(
        f"Provider {provider_id!r}: its API key comes from the command `{command}`, but {problem}.",
        hint=hint,
        providerId=provider_id,
    )


class KeyRing:
    """One provider's keys, rotated round-robin: each request starts at the next key.

    `order()` gives the keys to try for one request, the first being this
    request's turn and the rest its failover order.
    """

    def __init__(self, values: tuple[str, ...] | list[str], cache: KeyCache, provider_id: str) -> None:
        kept = [v.strip() for v in values if v and v.strip()]
        self.values: list[str] = kept or [""]  # no key at all = one empty key
        self.cache = cache
        self.provider_id = provider_id
        self._next = 0

    def __repr__(self) -> str:
        return f"KeyRing({[preview(v) for v in self.values]!r})"

    def __len__(self) -> int:
        return len(self.values)

    def order(self) -> list[str]:
        start = self._next % len(self.values)
        self._next += 1
        return self.values[start:] + self.values[:start]

    async def resolve(self, value: str, *, refresh: bool = False) -> str:
        return await self.cache.resolve(value, provider_id=self.provider_id, refresh=refresh)


def source(value: str) -> str:
    """Where a key comes from: "none", "literal", "env" or "cmd"."""
    if not value:
        return "none"
    return value[:3] if is_reference(value) else "literal"
