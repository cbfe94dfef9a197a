"""The export cache (``app.ipynb.cache``): kept per stamp, bounded in bytes, LRU."""

from __future__ import annotations

import uuid

from app.ipynb.cache import ExportCache

A, B, C = ((uuid.UUID(int=i), f"n{i}") for i in range(3))


def test_an_entry_is_served_for_its_stamp_only() -> None:
    cache: ExportCache[bytes] = ExportCache(100)
    cache.put(A, "s1", b"one", 10)
    assert cache.get(A, "s1") == b"one"
    assert cache.get(A, "s2") is None
    assert cache.get(B, "s1") is None
    cache.put(A, "s2", b"two", 20)
    assert (cache.get(A, "s1"), cache.get(A, "s2"), cache.size, len(cache)) == (None, b"two", 20, 1)


def test_the_least_recently_used_go_first_and_the_bound_holds() -> None:
    cache: ExportCache[str] = ExportCache(100)
    cache.put(A, "s", "a", 40)
    cache.put(B, "s", "b", 40)
    assert cache.get(A, "s") == "a"  # A is now the more recently used
    cache.put(C, "s", "c", 40)
    assert (cache.get(A, "s"), cache.get(B, "s"), cache.get(C, "s")) == ("a", None, "c")
    assert cache.size == 80
    cache.put(B, "s", "too big", 101)  # never kept, and nothing else dropped for it
    assert (cache.get(B, "s"), cache.size, len(cache)) == (None, 80, 2)


def test_size_zero_keeps_nothing() -> None:
    cache: ExportCache[str] = ExportCache(0)
    assert not cache.enabled
    cache.put(A, "s", "a", 1)
    assert cache.get(A, "s") is None
