"""Dependency graph of a reactive notebook, built from per-cell reads and writes.

The notebook is reactive, not top-to-bottom: a cell depends on whichever cell writes a name
it reads, wherever the two sit on the page.  This module is pure (no I/O) and is rebuilt on
every save, so everything is computed in (near-)linear time on integer cell positions:

* **edges** run writer -> reader for every name some cell writes and *another* cell reads
  (no self-edges).  When several cells write a name, every one of them is a writer; the
  ambiguity is reported in ``conflicts`` rather than resolved by position, because
  "the last writer above me" has no meaning in a reactive notebook.  Edges are de-duplicated
  (two shared names still make one edge) and ordered by (writer position, reader position)
  without sorting: readers are visited in notebook order and appended to their writers'
  successor lists.
* **conflicts** maps each name written by more than one cell to those cells in notebook
  order; keys are sorted so the output is deterministic.
* **cycles** are the strongly connected components with more than one cell (self-edges do
  not exist), found with an iterative Tarjan so 2,000-cell chains cannot hit the recursion
  limit.  Each cycle lists its cells in notebook order; cycles are ordered by their first
  cell's position.
* **order** is Kahn's topological sort with ties broken by notebook position (a min-heap,
  hence an O(log n) factor on top of O(cells + edges)), so a notebook without edges keeps
  its order.  Cells that cannot be ordered (in a cycle, or downstream of one) are appended
  in notebook order, so every cell id appears exactly once.

Cell ids must be unique; a duplicate id is a caller bug and raises ``ValueError``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence  # noqa: TC003 - runtime: get_type_hints(CellDeps), msgspec
from typing import NamedTuple

import msgspec

__all__ = ["CellDeps", "Graph", "build_graph"]


class CellDeps(NamedTuple):
    """What one cell reads and writes (see ``analysis.analyze``), in notebook order."""

    id: str
    reads: Sequence[str]
    writes: Sequence[str]


class Graph(msgspec.Struct, frozen=True):
    """The notebook's dependency graph; all lists of cells are cell ids."""

    order: list[str]
    edges: list[list[str]]  # [from_cell_id, to_cell_id]
    cycles: list[list[str]]
    conflicts: dict[str, list[str]]


def build_graph(cells: Sequence[CellDeps]) -> Graph:
    """Build the dependency graph of ``cells``, given in notebook order.

    Raises ``ValueError`` if two cells share an id.
    """
    ids = [cell.id for cell in cells]
    count = len(ids)
    if len(set(ids)) != count:
        seen: set[str] = set()
        for cell_id in ids:
            if cell_id in seen:
                raise ValueError(f"duplicate cell id: {cell_id!r}")
            seen.add(cell_id)

    writers: dict[str, list[int]] = {}
    for position, cell in enumerate(cells):
        for name in dict.fromkeys(cell.writes):
            writers.setdefault(name, []).append(position)

    successors: list[list[int]] = [[] for _ in range(count)]
    in_degree = [0] * count
    for position, cell in enumerate(cells):
        sources: set[int] = set()
        for name in set(cell.reads):
            for writer in writers.get(name, ()):
                if writer != position:
                    sources.add(writer)
        for writer in sources:
            successors[writer].append(position)  # readers arrive in notebook order
        in_degree[position] = len(sources)

    edges = [[ids[source], ids[target]] for source in range(count) for target in successors[source]]
    conflicts = {
        name: [ids[p] for p in positions]
        for name, positions in sorted(writers.items())
        if len(positions) > 1
    }
    return Graph(
        order=[ids[p] for p in _topological_order(successors, in_degree)],
        edges=edges,
        cycles=[[ids[p] for p in cycle] for cycle in _cycles(successors)],
        conflicts=conflicts,
    )


def _topological_order(successors: list[list[int]], in_degree: list[int]) -> list[int]:
    """Kahn's algorithm, smallest position first; unorderable cells appended in order."""
    remaining = list(in_degree)
    ready = [p for p, degree in enumerate(remaining) if degree == 0]  # already a valid heap
    order: list[int] = []
    placed = [False] * len(remaining)
    while ready:
        position = heapq.heappop(ready)
        order.append(position)
        placed[position] = True
        for target in successors[position]:
            remaining[target] -= 1
            if remaining[target] == 0:
                heapq.heappush(ready, target)
    if len(order) < len(remaining):
        order.extend(p for p, done in enumerate(placed) if not done)
    return order


def _cycles(successors: list[list[int]]) -> list[list[int]]:
    """Strongly connected components of size > 1 (iterative Tarjan), in notebook order."""
    count = len(successors)
    index = [-1] * count
    low = [0] * count
    on_stack = [False] * count
    component = [-1] * count
    stack: list[int] = []
    next_index = 0
    components = 0

    for root in range(count):
        if index[root] != -1:
            continue
        index[root] = low[root] = next_index
        next_index += 1
        stack.append(root)
        on_stack[root] = True
        work = [(root, 0)]  # (vertex, index of the next successor to explore)
        while work:
            vertex, edge = work[-1]
            targets = successors[vertex]
            if edge < len(targets):
                work[-1] = (vertex, edge + 1)
                target = targets[edge]
                if index[target] == -1:
                    index[target] = low[target] = next_index
                    next_index += 1
                    stack.append(target)
                    on_stack[target] = True
                    work.append((target, 0))
                elif on_stack[target] and index[target] < low[vertex]:
                    low[vertex] = index[target]
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                if low[vertex] < low[parent]:
                    low[parent] = low[vertex]
            if low[vertex] == index[vertex]:
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component[member] = components
                    if member == vertex:
                        break
                components += 1

    sizes = [0] * components
    for comp in component:
        sizes[comp] += 1
    # Walking positions in order lists each cycle's cells in notebook order and orders the
    # cycles by their first cell, without sorting.
    cycle_of: dict[int, list[int]] = {}
    for position, comp in enumerate(component):
        if sizes[comp] > 1:
            cycle_of.setdefault(comp, []).append(position)
    return list(cycle_of.values())
