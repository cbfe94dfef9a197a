"""The demo notebook template shipped in app/notebooks/demo.json."""

import re

import pytest

from app.notebooks.demo import DemoCell, DemoTemplate, load_demo

ALLOWED_TYPES = {"python", "sql", "markdown", "raw"}


@pytest.fixture(scope="module")
def demo() -> DemoTemplate:
    return load_demo()


def _codes(demo: DemoTemplate, cell_type: str) -> list[str]:
    return [cell.code for cell in demo.cells if cell.type == cell_type]


def test_decodes_into_typed_template(demo: DemoTemplate) -> None:
    assert isinstance(demo, DemoTemplate)
    assert all(isinstance(cell, DemoCell) for cell in demo.cells)
    assert demo.name.strip()
    assert len(demo.cells) >= 6


def test_demo_version_is_positive_int(demo: DemoTemplate) -> None:
    assert type(demo.demo_version) is int
    assert demo.demo_version >= 1


def test_cell_types_are_known_and_code_non_empty(demo: DemoTemplate) -> None:
    for cell in demo.cells:
        assert cell.type in ALLOWED_TYPES, cell
        assert cell.code.strip(), cell


def test_python_cells_compile(demo: DemoTemplate) -> None:
    python_cells = _codes(demo, "python")
    assert python_cells
    for code in python_cells:
        compile(code, "<demo>", "exec")


def test_x_is_defined_then_used(demo: DemoTemplate) -> None:
    python_cells = [code.strip() for code in _codes(demo, "python")]
    assert "x = 10" in python_cells
    defining = python_cells.index("x = 10")
    # A later cell derives a new variable from x, e.g. `y = x + 5`.
    assert any(
        re.search(r"^\s*y\s*=.*\bx\b", code, flags=re.MULTILINE)
        for code in python_cells[defining + 1 :]
    )


def test_showcases_pandas_matplotlib_plotly(demo: DemoTemplate) -> None:
    python_source = "\n".join(_codes(demo, "python"))
    assert "import pandas as pd" in python_source
    assert re.search(r"\bdf\s*=\s*pd\.DataFrame\(", python_source)
    assert "import matplotlib.pyplot as plt" in python_source
    assert "import plotly.express as px" in python_source
    assert re.search(r"\bfig\s*=\s*px\.\w+\(", python_source)


def test_sql_cell_interpolates_x(demo: DemoTemplate) -> None:
    sql_cells = _codes(demo, "sql")
    assert any("{x}" in code for code in sql_cells)
    assert any(re.search(r"\bFROM\s+df\b", code, flags=re.IGNORECASE) for code in sql_cells)


def test_load_demo_is_cached() -> None:
    assert load_demo() is load_demo()


def test_template_has_no_ids_or_dependency_fields() -> None:
    # Ids and reads/writes are assigned by the server per user copy; a template that
    # carried them would fail to decode (unknown fields are forbidden).
    assert set(DemoCell.__struct_fields__) == {"type", "code"}
    assert DemoCell.__struct_config__.forbid_unknown_fields
    assert DemoTemplate.__struct_config__.forbid_unknown_fields


def test_cells_tell_the_story_in_order(demo: DemoTemplate) -> None:
    def first(predicate_type: str, needle: str) -> int:
        for index, cell in enumerate(demo.cells):
            if cell.type == predicate_type and needle in cell.code:
                return index
        raise AssertionError(f"no {predicate_type} cell containing {needle!r}")

    order = [
        first("python", "x = 10"),
        first("python", "y = x"),
        first("python", "pd.DataFrame("),
        first("python", "plt."),
        first("python", "px."),
        first("sql", "{x}"),
    ]
    assert order == sorted(order)
    assert len(set(order)) == len(order)
