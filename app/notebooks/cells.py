"""Making stored cells: fresh ids and server-computed reads/writes (pure, no I/O).

Clients never send reads/writes; every path that creates or changes a
cell's code goes through ``make_cell`` so the analysis cannot be skipped.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import msgspec

from app.notebooks.analysis import analyze
from app.notebooks.demo import load_demo
from app.notebooks.schemas import CELL_TYPES, Cell, CellType, Output, StoredCell

if TYPE_CHECKING:
    from app.store.notebooks import RunStatus

ENCODE = msgspec.json.encode


def make_cell(
    cell_type: CellType,
    code: str,
    cell_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> StoredCell:
    reads, writes = analyze(cell_type, code)
    return StoredCell(
        id=cell_id or str(uuid.uuid4()),
        type=cell_type,
        code=code,
        reads=reads,
        writes=writes,
        metadata=metadata or {},
    )


class CodeEdit(msgspec.Struct, frozen=True):
    """The fields of a stored cell that a code edit replaces; id, type and metadata stay."""

    code: str
    reads: list[str]
    writes: list[str]


def code_edit(cell_type: CellType, code: str) -> CodeEdit:
    reads, writes = analyze(cell_type, code)
    return CodeEdit(code, reads, writes)


def code_edits(code: str) -> dict[CellType, CodeEdit]:
    """The edit for each type the cell may turn out to have (the database picks one)."""
    return {cell_type: code_edit(cell_type, code) for cell_type in CELL_TYPES}


def blank_cells() -> list[StoredCell]:
    """A new notebook starts with one empty python cell."""
    return [make_cell("python", "")]


@cache
def _analysed_demo() -> tuple[tuple[CellType, str, list[str], list[str]], ...]:
    analysed = []
    for cell in load_demo().cells:
        reads, writes = analyze(cell.type, cell.code)
        analysed.append((cell.type, cell.code, reads, writes))
    return tuple(analysed)


def demo_cells() -> list[StoredCell]:
    """An independent copy of the demo: the template's cells with fresh ids."""
    return [
        StoredCell(
            id=str(uuid.uuid4()),
            type=cell_type,
            code=code,
            reads=list(reads),
            writes=list(writes),
        )
        for cell_type, code, reads, writes in _analysed_demo()
    ]


def api_cell(
    cell: StoredCell,
    status: RunStatus = "idle",
    stdout: str = "",
    outputs: msgspec.Raw | None = None,
    error: str | None = None,
) -> Cell:
    """The API shape of a stored cell with its run state merged in.

    ``outputs`` is the stored JSON text as ``msgspec.Raw``, passed through
    undecoded; ``None`` means none.
    """
    return Cell(
        id=cell.id,
        type=cell.type,
        code=cell.code,
        reads=cell.reads,
        writes=cell.writes,
        metadata=cell.metadata,
        status=status,
        stdout=stdout,
        outputs=[] if outputs is None else cast("list[Output]", outputs),
        error=error,
    )


def idle(cell: StoredCell) -> Cell:
    """The API shape of a cell that has not run (no row in cell_runs)."""
    return api_cell(cell)
