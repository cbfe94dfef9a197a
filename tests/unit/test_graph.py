"""Tests for ``app.notebooks.graph.build_graph``: the reactive notebook's dependency graph."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.notebooks.graph import CellDeps, Graph, build_graph


def cell(cell_id: str, reads: str = "", writes: str = "") -> CellDeps:
    return CellDeps(cell_id, reads.split(), writes.split())


def test_chain_in_reverse_position_order_is_ordered_by_dependencies() -> None:
    graph = build_graph([cell("c", reads="y"), cell("b", "x", "y"), cell("a", writes="x")])
    assert graph.order == ["a", "b", "c"]
    # Edges are ordered by (position of writer, position of reader): b sits before a.
    assert graph.edges == [["b", "c"], ["a", "b"]]
    assert graph.cycles == []
    assert graph.conflicts == {}


def test_chain_in_position_order() -> None:
    graph = build_graph([cell("a", writes="x"), cell("b", "x", "y"), cell("c", reads="y")])
    assert graph.order == ["a", "b", "c"]
    assert graph.edges == [["a", "b"], ["b", "c"]]


def test_no_edges_keeps_notebook_order() -> None:
    cells = [cell(f"cell{i}", reads=f"unknown{i}", writes=f"v{i}") for i in range(10)]
    graph = build_graph(cells)
    assert graph.order == [c.id for c in cells]
    assert graph.edges == []
    assert graph == Graph(order=graph.order, edges=[], cycles=[], conflicts={})


def test_empty_notebook() -> None:
    assert build_graph([]) == Graph(order=[], edges=[], cycles=[], conflicts={})


def test_ties_are_broken_by_notebook_position() -> None:
    # d depends on a; b and c are free: Kahn emits the smallest ready position first.
    graph = build_graph([cell("d", reads="x"), cell("b"), cell("a", writes="x"), cell("c")])
    assert graph.order == ["b", "a", "d", "c"]


def test_reading_own_write_makes_no_self_edge() -> None:
    graph = build_graph([cell("a", "x", "x"), cell("b", "x")])
    assert graph.edges == [["a", "b"]]
    assert graph.cycles == []
    assert graph.order == ["a", "b"]


def test_edges_are_deduplicated_across_names() -> None:
    graph = build_graph([cell("a", writes="x y z"), cell("b", reads="x y z x")])
    assert graph.edges == [["a", "b"]]


def test_duplicate_names_in_a_cell_are_harmless() -> None:
    graph = build_graph([cell("a", writes="x x"), cell("b", reads="x x")])
    assert graph.edges == [["a", "b"]]
    assert graph.conflicts == {}


def test_conflicts_list_every_writer_in_notebook_order_and_all_get_edges() -> None:
    graph = build_graph(
        [cell("r", reads="x"), cell("w2", writes="x y"), cell("w1", writes="x"), cell("s", "y")]
    )
    assert graph.conflicts == {"x": ["w2", "w1"]}
    assert graph.edges == [["w2", "r"], ["w2", "s"], ["w1", "r"]]
    assert graph.order == ["w2", "w1", "r", "s"]


def test_conflict_keys_are_sorted() -> None:
    graph = build_graph([cell("a", writes="zeta alpha"), cell("b", writes="alpha zeta")])
    assert list(graph.conflicts) == ["alpha", "zeta"]


def test_two_cell_cycle() -> None:
    graph = build_graph([cell("a", "y", "x"), cell("b", "x", "y")])
    assert graph.cycles == [["a", "b"]]
    assert graph.edges == [["a", "b"], ["b", "a"]]
    assert graph.order == ["a", "b"]


def test_cycles_are_listed_in_notebook_order_and_downstream_cells_are_appended() -> None:
    cells = [
        cell("free"),
        cell("c2", "p", "q"),  # cycle A: c1 -> c2 -> c3 -> c1
        cell("d1", "s", "r"),  # cycle B: d1 <-> d2
        cell("c1", "r2 q3", "p"),
        cell("after", "q"),  # downstream of cycle A
        cell("c3", "q", "q3"),
        cell("d2", "r", "s"),
        cell("src", writes="r2"),
    ]
    graph = build_graph(cells)
    assert graph.cycles == [["c2", "c1", "c3"], ["d1", "d2"]]
    # Orderable cells first (free, then src), then the rest in notebook position order.
    assert graph.order == ["free", "src", "c2", "d1", "c1", "after", "c3", "d2"]
    assert ["src", "c1"] in graph.edges


def test_graph_is_a_frozen_msgspec_struct() -> None:
    graph = build_graph([cell("a", writes="x"), cell("b", "x")])
    with pytest.raises(AttributeError):
        graph.order = []  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(graph), type=Graph) == graph
    assert msgspec.to_builtins(graph) == {
        "order": ["a", "b"],
        "edges": [["a", "b"]],
        "cycles": [],
        "conflicts": {},
    }


def test_duplicate_cell_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate cell id: 'a'"):
        build_graph([cell("a"), cell("b"), cell("a")])


def test_long_chain_in_reverse_order_has_no_recursion_problem() -> None:
    count = 2_000
    cells = [cell(f"c{i}", reads=f"v{i - 1}" if i else "", writes=f"v{i}") for i in range(count)]
    graph = build_graph(list(reversed(cells)))
    assert graph.order == [f"c{i}" for i in range(count)]
    assert len(graph.edges) == count - 1
    assert graph.cycles == []


def test_long_cycle_has_no_recursion_problem() -> None:
    count = 2_000
    cells = [cell(f"c{i}", reads=f"v{(i - 1) % count}", writes=f"v{i}") for i in range(count)]
    graph = build_graph(cells)
    assert graph.cycles == [[c.id for c in cells]]
    assert graph.order == [c.id for c in cells]


def test_dense_notebook_gets_every_edge() -> None:
    # 2,000 cells, each reading the previous 5 cells' names: 10,000 edges.
    count = 2_000
    cells = [
        cell(f"c{i}", " ".join(f"v{j}" for j in range(max(0, i - 5), i)), f"v{i} shared")
        for i in range(count)
    ]
    graph = build_graph(cells)
    assert len(graph.edges) == sum(min(i, 5) for i in range(count))
    assert len(graph.conflicts["shared"]) == count


# -- properties --------------------------------------------------------------------------------

NAMES = ["a", "b", "c", "d", "e", "f"]


@st.composite
def notebooks(draw: st.DrawFn) -> list[CellDeps]:
    size = draw(st.integers(0, 12))
    names = st.lists(st.sampled_from(NAMES), max_size=3)
    return [CellDeps(f"cell{i}", draw(names), draw(names)) for i in range(size)]


@settings(max_examples=200, deadline=None)
@given(notebooks())
def test_graph_invariants(cells: list[CellDeps]) -> None:
    graph = build_graph(cells)
    position = {c.id: i for i, c in enumerate(cells)}
    # Every id appears exactly once in order.
    assert sorted(graph.order) == sorted(position)
    # Edges: exactly writer -> other reader pairs, de-duplicated, in (from, to) position order.
    expected = {
        (w.id, r.id) for w in cells for r in cells if w.id != r.id and set(w.writes) & set(r.reads)
    }
    pairs = [(a, b) for a, b in graph.edges]
    assert set(pairs) == expected
    assert pairs == sorted(pairs, key=lambda e: (position[e[0]], position[e[1]]))
    # Cells in a cycle, and every edge between orderable cells, respect the order.
    in_cycle = {cell_id for cycle in graph.cycles for cell_id in cycle}
    rank = {cell_id: i for i, cell_id in enumerate(graph.order)}
    for cycle in graph.cycles:
        assert len(cycle) > 1
        assert cycle == sorted(cycle, key=position.__getitem__)
    assert [position[c[0]] for c in graph.cycles] == sorted(position[c[0]] for c in graph.cycles)
    unorderable = set(in_cycle)  # plus everything downstream of a cycle
    frontier = list(in_cycle)
    while frontier:
        source = frontier.pop()
        for a, b in pairs:
            if a == source and b not in unorderable:
                unorderable.add(b)
                frontier.append(b)
    assert graph.order[len(graph.order) - len(unorderable) :] == sorted(
        unorderable, key=position.__getitem__
    )
    for a, b in pairs:
        if a not in unorderable:
            assert rank[a] < rank[b]
    # Conflicts: names with several writers, writers in notebook order.
    for name, writers in graph.conflicts.items():
        assert writers == [c.id for c in cells if name in c.writes]
        assert len(writers) > 1
    assert set(graph.conflicts) == {n for n in NAMES if sum(n in c.writes for c in cells) > 1}
