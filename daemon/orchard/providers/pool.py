"""One live :class:`ProviderClient` per provider, rebuilt when its settings change.

Each client holds a pooled ``httpx.AsyncClient``, so requests to the same
provider reuse connections. When a provider's settings change (a save, a
protocol edit), its client is retired: new requests get a fresh client built
from the new settings (new timeout, proxy, headers — no restart), while a
chat already streaming through the old one finishes undisturbed; the old
client is closed when its last user is done. Resolved ``env:``/``cmd:`` keys
are cached across rebuilds in one shared :class:`KeyCache`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from .base import ProviderSettings
from .client import ProviderClient
from .keys import KeyCache


class _Entry:
    def __init__(self, client: ProviderClient) -> None:
        self.client = client
        self.users = 0
        self.retired = False


class ProviderPool:
    def __init__(self, settings_for: Callable[[str], ProviderSettings]) -> None:
        self._settings_for = settings_for
        self._entries: dict[str, _Entry] = {}
        self._retired: set[_Entry] = set()
        self.keys = KeyCache()

    @contextlib.asynccontextmanager
    async def use(self, provider_id: str) -> AsyncIterator[ProviderClient]:
        """The provider's current client, kept open while the block runs."""
        entry = self._entries.get(provider_id)
        if entry is None:
            entry = _Entry(ProviderClient(self._settings_for(provider_id), key_cache=self.keys))
            self._entries[provider_id] = entry
        entry.users += 1
        try:
            yield entry.client
        finally:
            entry.users -= 1
            if entry.retired and entry.users == 0:
                self._retired.discard(entry)
                await entry.client.aclose()

    async def changed(self, provider_ids: list[str]) -> None:
        """Settings of these providers changed (or they were removed): rebuild on next use."""
        for pid in provider_ids:
            entry = self._entries.pop(pid, None)
            if entry is None:
                continue
            entry.retired = True
            if entry.users == 0:
                await entry.client.aclose()
            else:
                self._retired.add(entry)

    async def aclose(self) -> None:
        for entry in [*self._entries.values(), *self._retired]:
            await entry.client.aclose()
        self._entries.clear()
        self._retired.clear()
