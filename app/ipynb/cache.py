"""Exports already written, kept while the notebook stays as it was (``GET …/ipynb``).

Writing a notebook as .ipynb is nbformat's JSON writer over every output:
tens of milliseconds for a notebook of a few megabytes, the same bytes again
for every download of an unchanged notebook.  This process keeps the last
exports it wrote, least recently used first out, up to
``IPYNB_EXPORT_CACHE_BYTES`` (0: none), each with the notebook's ``STAMP``
(``app.store.ipynb``), which changes with anything the export is made of.
Each request reads the current stamp first (one short statement) and uses
the kept bytes only when it is the same, so several instances, each with
its own cache, never serve an export older than the database.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar
from uuid import UUID

V = TypeVar("V")
Key = tuple[UUID, str]  # (owner, notebook id)


class ExportCache(Generic[V]):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[Key, tuple[str, V, int]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, key: Key, stamp: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != stamp:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Key, stamp: str, value: V, size: int) -> None:
        """Keep ``value`` (``size`` bytes) for ``key`` at ``stamp``, if it fits at all."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old[2]
        if size > self.max_bytes:
            return
        self._entries[key] = (stamp, value, size)
        self.size += size
        while self.size > self.max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self.size -= dropped

    def __len__(self) -> int:
        return len(self._entries)
