"""app/notebooks/cells.py: stored cells get fresh ids and server-computed reads/writes."""

from __future__ import annotations

import uuid

from app.notebooks.analysis import analyze
from app.notebooks.cells import (
    blank_cells,
    code_edit,
    code_edits,
    demo_cells,
    idle,
    make_cell,
)
from app.notebooks.demo import load_demo
from app.notebooks.schemas import StoredCell


def _is_uuid4(value: str) -> bool:
    return str(uuid.UUID(value)) == value and uuid.UUID(value).version == 4


def test_make_cell_computes_reads_and_writes_and_a_uuid() -> None:
    cell = make_cell("python", "y = x + 5\nimport numpy as np\nz = np.sum(y)")
    assert isinstance(cell, StoredCell)
    assert _is_uuid4(cell.id)
    assert cell.type == "python"
    assert cell.code == "y = x + 5\nimport numpy as np\nz = np.sum(y)"
    assert cell.reads == ["x"]
    assert cell.writes == ["np", "y", "z"]
    assert cell.metadata == {}


def test_make_cell_ids_are_fresh() -> None:
    assert len({make_cell("python", "").id for _ in range(50)}) == 50


def test_make_cell_keeps_a_given_id_and_metadata() -> None:
    cell = make_cell("sql", "SELECT * FROM t WHERE a > {b} AND c = {a}", "legacy-id", {"k": 1})
    assert cell.id == "legacy-id"
    assert cell.metadata == {"k": 1}
    assert cell.reads == ["a", "b"]
    assert cell.writes == []


def test_make_cell_sorts_reads_and_writes() -> None:
    cell = make_cell("python", "c = z + a\nb = m\na = 1")
    assert cell.reads == sorted(cell.reads) == ["a", "m", "z"]
    assert cell.writes == sorted(cell.writes) == ["a", "b", "c"]


def test_make_cell_syntax_error_gives_empty_reads_and_writes() -> None:
    cell = make_cell("python", "x = (1 +")
    assert cell.code == "x = (1 +"
    assert (cell.reads, cell.writes) == ([], [])


def test_make_cell_markdown_raw_and_code_read_and_write_nothing() -> None:
    for cell_type in ("markdown", "raw", "code"):
        cell = make_cell(cell_type, "x = y  {z}")
        assert (cell.reads, cell.writes) == ([], [])


def test_make_cell_matches_analyze() -> None:
    code = "import pandas as pd\ndf = pd.DataFrame({'a': [x, y]})"
    reads, writes = analyze("python", code)
    cell = make_cell("python", code)
    assert (cell.reads, cell.writes) == (reads, writes)


def test_code_edit_recomputes_reads_and_writes_from_the_new_code() -> None:
    edit = code_edit("python", "b = a * 2")
    assert (edit.code, edit.reads, edit.writes) == ("b = a * 2", ["a"], ["b"])


def test_code_edit_analyses_by_the_cells_type() -> None:
    assert code_edit("sql", "SELECT {n}").reads == ["n"]
    assert code_edit("python", "SELECT {n}").reads != ["n"]


def test_code_edits_hold_one_analysis_per_cell_type() -> None:
    edits = code_edits("x = {n}")
    assert set(edits) == {"python", "sql", "markdown", "raw", "code"}
    assert (edits["python"].reads, edits["python"].writes) == (["n"], ["x"])
    assert (edits["sql"].reads, edits["sql"].writes) == (["n"], [])
    assert all(edits[t] == code_edit(t, "x = {n}") for t in edits)
    assert (edits["markdown"].reads, edits["raw"].writes, edits["code"].writes) == ([], [], [])


def test_blank_cells_is_one_empty_python_cell() -> None:
    cells = blank_cells()
    assert len(cells) == 1
    (cell,) = cells
    assert (cell.type, cell.code, cell.reads, cell.writes, cell.metadata) == (
        "python",
        "",
        [],
        [],
        {},
    )
    assert _is_uuid4(cell.id)
    assert blank_cells()[0].id != cell.id


def test_demo_cells_match_the_template_in_order() -> None:
    template = load_demo().cells
    cells = demo_cells()
    assert [(c.type, c.code) for c in cells] == [(t.type, t.code) for t in template]
    for cell in cells:
        assert _is_uuid4(cell.id)
        assert (cell.reads, cell.writes) == analyze(cell.type, cell.code)
        assert cell.metadata == {}


def test_demo_cells_have_fresh_ids_each_call() -> None:
    first, second = demo_cells(), demo_cells()
    first_ids = {c.id for c in first}
    second_ids = {c.id for c in second}
    assert len(first_ids) == len(first)
    assert first_ids.isdisjoint(second_ids)


def test_demo_cells_copies_are_independent() -> None:
    first, second = demo_cells(), demo_cells()
    first[1].reads.append("mutated")
    first[1].writes.append("mutated")
    assert "mutated" not in second[1].reads
    assert "mutated" not in second[1].writes
    assert "mutated" not in demo_cells()[1].writes


def test_demo_cells_show_variables_flowing() -> None:
    by_code = {c.code: c for c in demo_cells()}
    assert by_code["x = 10"].writes == ["x"]
    flow = next(c for c in by_code.values() if c.code.startswith("y = x + 5"))
    assert (flow.reads, flow.writes) == (["x"], ["y"])
    sql = next(c for c in by_code.values() if c.type == "sql")
    assert "x" in sql.reads


def test_idle_is_the_cell_without_run_state() -> None:
    stored = make_cell("python", "a = b", metadata={"m": 1})
    cell = idle(stored)
    assert (cell.id, cell.type, cell.code) == (stored.id, "python", "a = b")
    assert (cell.reads, cell.writes, cell.metadata) == (["b"], ["a"], {"m": 1})
    assert (cell.status, cell.stdout, cell.outputs, cell.error) == ("idle", "", [], None)
