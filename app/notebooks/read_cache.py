"""Encoded answers of ``GET /notebooks/{id}`` (and ``…/graph``), kept while the seq holds.

Most reads of a notebook return exactly the bytes of the previous read, and
the floor of a full read is PostgreSQL turning the stored JSON back into text
(about three quarters of it for the 220 KB notebook).  Every change of a
notebook, its outputs included, moves ``notebooks.seq`` (SPEC §11) in the
transaction that makes it, so the answer read at seq ``s`` is the answer for
as long as the notebook's seq is ``s``.  A read therefore looks up the current
seq with one primary-key statement that also checks the owner (and, with
``OWNED``, that the notebook is not trashed); when an entry of this process
has that seq it sends the kept bytes, else it reads in full and keeps the
answer under the seq read *in the same statement* as the content.

Correct on every instance by construction: the entry is only a copy of what
a full read at that seq gave, and it is used only when the database says that
seq is still the current one, so no instance can send an older version than
the database holds, and nothing has to tell an instance to forget an entry
(the realtime listener may ``drop`` one early, to free its memory sooner; no
answer depends on it).

Bounded by ``READ_CACHE_BYTES`` (0: off): least recently used entries go
first, sizes counted as the answer's bytes plus a fixed overhead per entry
(``ENTRY_OVERHEAD``), so the bound holds for the process's memory, not only
for the payloads (bench/read_cache_memory.py measures it).  The bytes are
never copied: a hit hands the very ``bytes`` object to the response.
"""

from __future__ import annotations

import ctypes
import sys
from typing import TYPE_CHECKING, Literal
from uuid import UUID

import msgspec
from cachetools import LRUCache

if TYPE_CHECKING:
    from collections.abc import Callable

# What is kept of a notebook: GET /notebooks/{id}'s answer, GET …/graph's.  Keys are
# (kind, notebook id) tuples: no notebook id can pass for another kind's key.
Kind = Literal["notebook", "graph"]
KINDS: tuple[Kind, ...] = ("notebook", "graph")

# What an entry costs besides its answer's bytes: the key (a tuple of the kind and a
# notebook id, ~85 bytes as a str), the Answer and entry structs, the cache's own
# book-keeping (a slot in its data and size dicts, a node of its LRU order).
# tracemalloc on CPython 3.11: ≈ 320 bytes plus the id, ≈ 410 in all; rounded up.
ENTRY_OVERHEAD = 512


class Answer(msgspec.Struct, frozen=True, gc=False):
    """An encoded answer and what its headers say: the ETag's revision and Cellar-Seq."""

    body: bytes
    revision: int
    seq: int


class _Entry(msgspec.Struct, frozen=True, gc=False):
    owner: UUID
    answer: Answer


def _size(entry: _Entry) -> int:
    return sys.getsizeof(entry.answer.body) + ENTRY_OVERHEAD


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where there is none (musl, macOS).

    Answers are tens or hundreds of kilobytes: the C allocator serves them
    from its heap, between the buffers each request allocates and frees.  An
    evicted answer leaves a hole there that the allocator keeps, so without
    this the process's resident memory drifts above what the cache holds (1.23
    times a 64 MiB bound in an in-process trial of 12,000 answers of 40 KiB;
    1.03 times with it; docs/read-cache.md).  ``malloc_trim`` hands every whole
    free page back to the system.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


_TRIM = _malloc_trim()
# Hand freed memory back after this much was evicted or dropped (and at least 4 MiB):
# a trim walks the allocator's free lists, a millisecond or so.
TRIM_SHARE = 16


class ReadCache:
    """The kept answers of one process, by kind and notebook id; each valid at its seq only."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # maxsize must be positive for cachetools; a disabled cache is never written.
        self._entries: LRUCache[tuple[Kind, str], _Entry] = LRUCache(
            max(max_bytes, 1), getsizeof=_size
        )
        self._freed = 0  # bytes evicted or dropped since the last trim
        self._trim_after = max(max_bytes // TRIM_SHARE, 4 * 1024 * 1024)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size(self) -> int:
        """The bytes counted against the bound (answers plus per-entry overhead)."""
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, notebook_id: str, kind: Kind = "notebook") -> bool:
        """Whether an entry for the notebook is kept (at whatever seq, for whoever)."""
        return (kind, notebook_id) in self._entries

    def kept_seq(self, notebook_id: str, owner: UUID, kind: Kind = "notebook") -> int | None:
        """The seq of the answer kept for ``notebook_id`` and ``owner`` (None: none kept)."""
        entry = self._entries.get((kind, notebook_id))
        return None if entry is None or entry.owner != owner else entry.answer.seq

    def get(
        self, notebook_id: str, owner: UUID, seq: int, kind: Kind = "notebook"
    ) -> Answer | None:
        """The answer kept for ``notebook_id`` if it was read at ``seq`` for ``owner``."""
        entry = self._entries.get((kind, notebook_id))
        if entry is None or entry.answer.seq != seq or entry.owner != owner:
            return None
        return entry.answer

    def put(self, notebook_id: str, owner: UUID, answer: Answer, kind: Kind = "notebook") -> None:
        """Keep ``answer`` (read at ``answer.seq``), unless an entry of a later seq is kept.

        Two requests that missed together may finish in either order: the one
        that read the older seq must not replace the newer entry.
        """
        if not self.enabled:
            return
        key = (kind, notebook_id)
        kept = self._entries.get(key)
        if kept is not None and kept.owner == owner and kept.answer.seq > answer.seq:
            return
        # An exact copy: an encoder's output may sit in a larger allocation than its length
        # (msgspec's grows by half: 60 KiB held for 40 KiB of JSON), which the bound would
        # not see.  The copy is made once per full read, never per hit.
        kept_answer = Answer(memoryview(answer.body).tobytes(), answer.revision, answer.seq)
        entry = _Entry(owner, kept_answer)
        size = _size(entry)
        before = self.size
        if size > self.max_bytes:
            self._entries.pop(key, None)  # larger than the whole cache: not kept
            size = 0
        else:
            self._entries[key] = entry
        self._released(before + size - self.size)

    def forget_before(self, notebook_id: str, seq: int) -> None:
        """Forget the notebook's entries read before ``seq`` (the realtime listener heard of
        event ``seq``): they can no longer be used, and their memory goes back at once.
        Memory only: an entry kept would only be found stale by the next read."""
        before = self.size
        for kind in KINDS:
            entry = self._entries.get((kind, notebook_id))
            if entry is not None and entry.answer.seq < seq:
                del self._entries[(kind, notebook_id)]
        self._released(before - self.size)

    def drop(self, notebook_id: str) -> None:
        """Forget the notebook's entries: memory only."""
        before = self.size
        for kind in KINDS:
            self._entries.pop((kind, notebook_id), None)
        self._released(before - self.size)

    def _released(self, freed: int) -> None:
        """Count what left the cache; past ``_trim_after``, give the free pages back."""
        self._freed += freed
        if self._freed >= self._trim_after and _TRIM is not None:
            self._freed = 0
            _TRIM()
