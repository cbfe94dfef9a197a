"""ReadCache alone: keyed by notebook, valid at one seq for one owner, bounded by size."""

from __future__ import annotations

import sys
import uuid

from app.notebooks.read_cache import ENTRY_OVERHEAD, Answer, ReadCache

ALICE, BOB = uuid.uuid4(), uuid.uuid4()


def answer(seq: int, size: int = 100, revision: int = 1) -> Answer:
    return Answer(b"x" * size, revision, seq)


def cost(size: int) -> int:
    return sys.getsizeof(b"x" * size) + ENTRY_OVERHEAD


def test_an_answer_is_used_only_at_its_seq_and_for_its_owner() -> None:
    cache = ReadCache(10_000)
    kept = answer(seq=7)
    cache.put("nb", ALICE, kept)
    assert cache.get("nb", ALICE, 7) == kept
    assert cache.get("nb", ALICE, 8) is None
    assert cache.get("nb", ALICE, 6) is None
    assert cache.get("nb", BOB, 7) is None
    assert cache.get("other", ALICE, 7) is None


def test_an_older_read_does_not_replace_a_newer_entry() -> None:
    cache = ReadCache(10_000)
    cache.put("nb", ALICE, answer(seq=9))
    cache.put("nb", ALICE, answer(seq=8))
    assert cache.get("nb", ALICE, 9) is not None
    cache.put("nb", ALICE, answer(seq=10))
    assert cache.get("nb", ALICE, 9) is None
    assert cache.get("nb", ALICE, 10) is not None


def test_the_size_bound_holds_least_recently_used_first_out() -> None:
    bound = 3 * cost(1000)
    cache = ReadCache(bound)
    for name in ("a", "b", "c"):
        cache.put(name, ALICE, answer(1, 1000))
    assert cache.size == bound and len(cache) == 3
    assert cache.get("a", ALICE, 1) is not None  # a is now the most recently used
    cache.put("d", ALICE, answer(1, 1000))
    assert [cache.holds(name) for name in "abcd"] == [True, False, True, True]
    assert cache.size <= bound
    cache.put("e", ALICE, answer(1, 2500))  # needs two entries' room
    assert cache.size <= bound
    assert cache.holds("e") and not cache.holds("c")


def test_an_answer_larger_than_the_bound_is_not_kept() -> None:
    cache = ReadCache(cost(1000))
    cache.put("nb", ALICE, answer(1, 1000))
    cache.put("nb", ALICE, answer(2, 1001))
    assert not cache.holds("nb") and cache.size == 0


def test_zero_keeps_nothing() -> None:
    cache = ReadCache(0)
    assert not cache.enabled
    cache.put("nb", ALICE, answer(1))
    assert not cache.holds("nb") and len(cache) == 0


def test_drop_forgets() -> None:
    cache = ReadCache(10_000)
    cache.put("nb", ALICE, answer(1))
    cache.drop("nb")
    cache.drop("never kept")
    assert not cache.holds("nb") and cache.size == 0


def test_forget_before_drops_only_older_answers_of_every_kind() -> None:
    cache = ReadCache(10_000)
    cache.put("nb", ALICE, answer(seq=5))
    cache.put("nb", ALICE, answer(seq=5), kind="graph")
    cache.put("other", ALICE, answer(seq=1))
    cache.forget_before("nb", 5)  # the event the entries were read at: still current
    assert cache.holds("nb") and cache.holds("nb", "graph")
    cache.forget_before("nb", 6)
    assert not cache.holds("nb") and not cache.holds("nb", "graph")
    assert cache.holds("other")


def test_kinds_are_kept_apart() -> None:
    cache = ReadCache(10_000)
    cache.put("nb", ALICE, answer(seq=3, size=10))
    assert cache.get("nb", ALICE, 3, kind="graph") is None
    cache.put("nb", ALICE, answer(seq=3, size=20), kind="graph")
    notebook, graph = cache.get("nb", ALICE, 3), cache.get("nb", ALICE, 3, kind="graph")
    assert notebook is not None and graph is not None
    assert (len(notebook.body), len(graph.body)) == (10, 20)


def test_the_kept_body_is_an_exact_copy() -> None:
    """An encoder's output may sit in a larger allocation than its length: not kept as is."""
    import msgspec

    body = msgspec.json.encode({"data": "x" * 40_000})
    cache = ReadCache(100_000)
    cache.put("nb", ALICE, Answer(body, 1, 1))
    kept = cache.get("nb", ALICE, 1)
    assert kept is not None and kept.body == body and kept.body is not body
