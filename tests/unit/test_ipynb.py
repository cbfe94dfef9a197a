""".ipynb in and out (``app.ipynb``): corpus round trips, repairs, refusals, kernels, app notebooks.

"Equal" is SPEC §12's: equal as JSON after nbformat's own read of the input
and of the export.  Every import goes through ``stored`` first, which does
to the pieces what a JSON column does (msgspec out and back in to the
declared types), so the tests see what the export will see after storage.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec
import nbformat
import pytest

from app.ipynb.convert import export_ipynb, import_ipynb, is_python_kernel, nbformat_id
from app.ipynb.outputs import STDERR_MIME
from app.ipynb.reading import IpynbError, read_ipynb
from app.notebooks.cells import code_edit, demo_cells, make_cell
from app.notebooks.schemas import Output, StoredCell
from app.store.notebooks import RunState
from tests import ipynb_corpus as corpus
from tests.ipynb_corpus import as_read, runs_of, stored, without_ids

if TYPE_CHECKING:
    from app.ipynb.schemas import IpynbImport


def round_trip(text: str | bytes) -> tuple[IpynbImport, bytes]:
    imported = import_ipynb(text.encode() if isinstance(text, str) else text)
    return imported, export_ipynb(*stored(imported))


def assert_valid_nbformat(exported: bytes) -> None:
    notebook = nbformat.reads(exported.decode(), as_version=nbformat.NO_CONVERT)
    nbformat.validate(notebook)  # raises when invalid
    assert notebook.nbformat == 4


@pytest.fixture(scope="module", params=sorted(corpus.VALID))
def valid(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param, corpus.VALID[request.param]()


# -- round trips -------------------------------------------------------------------------------


def test_valid_notebooks_come_back_equal_after_nbformats_read(valid: tuple[str, str]) -> None:
    _, text = valid
    imported, exported = round_trip(text)
    assert imported.warnings == []
    assert as_read(exported) == as_read(text)
    assert_valid_nbformat(exported)


def test_export_is_a_fixed_point(valid: tuple[str, str]) -> None:
    _, text = valid
    _, once = round_trip(text)
    _, twice = round_trip(once)
    if as_read(text)["nbformat_minor"] >= 5:
        assert twice == once  # byte for byte: ids, keys, order, layout
    else:
        assert without_ids(as_read(twice)) == without_ids(as_read(once))


def test_export_writes_like_jupyter(valid: tuple[str, str]) -> None:
    _, text = valid
    _, exported = round_trip(text)
    written = nbformat.writes(nbformat.reads(exported.decode(), as_version=nbformat.NO_CONVERT))
    assert exported.decode() == written + "\n"


@pytest.mark.parametrize("name", sorted(corpus.V3))
def test_v3_is_upgraded_and_comes_back_as_nbformats_upgrade(name: str) -> None:
    text = corpus.V3[name]()
    imported, exported = round_trip(text)
    assert imported.warnings[0] == "notebook: nbformat 3.0 upgraded to 4.5"
    assert without_ids(as_read(exported)) == without_ids(as_read(text, as_version=4))
    assert [cell["id"] for cell in as_read(exported)["cells"]] == [c.id for c in imported.cells]
    assert as_read(exported)["nbformat_minor"] == 5
    assert_valid_nbformat(exported)


def test_v3_content_survives_the_upgrade() -> None:
    imported = import_ipynb(corpus.v3_notebook())
    assert [cell.type for cell in imported.cells] == [
        "markdown",
        "markdown",
        "python",
        "python",
        "python",
        "raw",
    ]
    assert imported.cells[0].code == "# A v3 notebook"
    first = runs_of(imported)[imported.cells[2].id]
    assert (first.status, first.stdout) == ("success", "hi\n")
    assert first.ipynb is not None and json.loads(first.ipynb)["execution_count"] == 1
    assert runs_of(imported)[imported.cells[4].id].status == "error"


def test_older_minors_keep_their_minor_and_get_no_ids() -> None:
    text = corpus.older_minor(4)()
    imported, exported = round_trip(text)
    assert imported.extra.nbformat_minor == 4
    document = as_read(exported)
    assert document["nbformat_minor"] == 4
    assert all("id" not in cell for cell in document["cells"])
    again = import_ipynb(exported)
    assert {c.id for c in again.cells}.isdisjoint({c.id for c in imported.cells})


def test_future_minor_keys_are_kept_beside_the_cells() -> None:
    imported = import_ipynb(corpus.future_minor())
    assert imported.extra.keys == {"provenance": {"tool": "future-lab"}}
    assert imported.extra.cells[imported.cells[1].id].keys == {"collapsed_outputs": [0, 2]}


def test_outputs_are_not_in_the_cells_document_and_are_stored_once() -> None:
    text = corpus.four_mb_images()
    imported = import_ipynb(text)
    assert len(text) > 4_000_000
    assert len(msgspec.json.encode(imported.cells)) < 30_000
    run = runs_of(imported)[imported.cells[0].id]
    assert run.ipynb is not None
    # The figure is in the API's outputs, as read (base64 with its newline) ...
    assert json.loads(run.outputs)[0]["data"].endswith("\n")
    # ... and the record says so instead of holding it again.
    record = json.loads(run.ipynb)
    assert record["shared"] == [[0, 0]]
    assert "image/png" not in record["outputs"][0]["data"]
    assert record["outputs"][0]["data"]["text/plain"] == "<Figure size 640x480>"
    stored = sum(len(r.outputs) + len(r.ipynb or "") for r in imported.runs)
    assert stored < len(text) * 1.05


# -- what the app shows ------------------------------------------------------------------------


def outputs_of(run: RunState) -> list[Output]:
    return msgspec.json.decode(run.outputs, type=list[Output])


def test_run_state_as_the_api_shows_it() -> None:
    imported = import_ipynb(corpus.every_output_type())
    cells = imported.cells
    runs = runs_of(imported)
    first = runs[cells[1].id]
    assert (first.status, first.stdout, first.error) == ("success", "hello\n", None)
    assert outputs_of(first) == [
        Output(STDERR_MIME, "careful\n", {}),
        Output("text/plain", "42", {}),
    ]
    plot = outputs_of(runs[cells[2].id])
    assert plot[1].mime_type == "image/png"
    assert plot[1].data == corpus.png(1, 16)
    assert plot[1].metadata == {
        "image/png": {"width": 640, "height": 480},
        "needs_background": "light",
    }
    error = runs[cells[3].id]
    assert error.status == "error"
    assert error.error is not None and "\x1b" not in error.error
    assert error.error.endswith("ZeroDivisionError: division by zero")
    assert [o.mime_type for o in outputs_of(runs[cells[4].id])] == ["text/html"]
    assert [o.mime_type for o in outputs_of(runs[cells[5].id])] == ["image/svg+xml", "text/plain"]
    ran_silently = runs[cells[6].id]
    assert (ran_silently.status, outputs_of(ran_silently)) == ("success", [])
    assert cells[7].id not in runs  # never ran: no run state at all
    assert cells[0].id not in runs  # markdown


def test_rich_mimes_are_shown_before_their_text() -> None:
    plots = import_ipynb(corpus.plots())
    shown = [outputs_of(runs_of(plots)[cell.id])[0].mime_type for cell in plots.cells]
    assert shown == [
        "application/vnd.vegalite.v5+json",
        "application/vnd.plotly.v1+json",
        "application/vnd.vega.v5+json",
    ]
    plotly = outputs_of(runs_of(plots)[plots.cells[1].id])[0]
    assert plotly.data["layout"]["title"]["text"] == "π ≈ 3.14"
    widget = import_ipynb(corpus.widgets())
    # A widget view needs a live kernel: the app shows its text.
    assert outputs_of(runs_of(widget)[widget.cells[0].id])[0] == Output(
        "text/plain", "IntSlider(value=7, max=10)", {}
    )


def test_a_run_rewritten_by_the_engine_is_exported_from_the_api_state() -> None:
    imported = import_ipynb(corpus.every_output_type())
    cells, runs, extra = stored(imported)
    target = cells[1].id
    api_outputs = [
        Output("image/png", corpus.png(9), {"width": 10}),
        Output("application/json", {"k": [1, 2]}, {}),
        Output("text/html", {"not": "text"}, {}),  # the API allows any JSON
        Output(STDERR_MIME, "oops\n", {}),
    ]
    runs[target] = RunState(
        cell_id=target,
        status="error",
        stdout="new\n",
        outputs=msgspec.json.encode(api_outputs).decode(),
        error="Traceback (most recent call last):\nValueError: bad value",
    )
    exported = export_ipynb(cells, runs, extra)
    assert_valid_nbformat(exported)
    cell = as_read(exported)["cells"][1]
    assert cell["execution_count"] is None
    assert cell["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "new\n"},
        {
            "output_type": "display_data",
            "data": {"image/png": corpus.png(9)},
            "metadata": {"width": 10},
        },
        {
            "output_type": "display_data",
            "data": {"application/json": {"k": [1, 2]}},
            "metadata": {},
        },
        {"output_type": "display_data", "data": {"text/html": '{"not":"text"}'}, "metadata": {}},
        {"output_type": "stream", "name": "stderr", "text": "oops\n"},
        {
            "output_type": "error",
            "ename": "ValueError",
            "evalue": "bad value",
            "traceback": ["Traceback (most recent call last):", "ValueError: bad value"],
        },
    ]
    # Every other cell still has its imported outputs.
    assert as_read(exported)["cells"][2] == as_read(corpus.every_output_type())["cells"][2]
    again = runs_of(import_ipynb(exported))[target]
    assert (again.status, again.stdout, again.error) == ("error", "new\n", runs[target].error)
    assert outputs_of(again)[:2] == api_outputs[:2]


# -- repairs and refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus.REPAIRED))
def test_repairs_are_listed_and_the_result_is_valid(name: str) -> None:
    build, expected = corpus.REPAIRED[name]
    imported, exported = round_trip(build())
    warnings = iter(imported.warnings)
    for fragment in expected:  # each expected warning, in order
        assert any(fragment in warning for warning in warnings), (fragment, imported.warnings)
    assert_valid_nbformat(exported)
    again, exported_again = round_trip(exported)
    assert again.warnings == []
    assert as_read(exported_again) == as_read(exported)


def test_ids_kept_when_valid_and_unique_else_new() -> None:
    original = [cell["id"] for cell in json.loads(corpus.every_output_type())["cells"]]
    missing = import_ipynb(corpus.ids_missing())
    ids = [cell.id for cell in missing.cells]
    assert ids[1:3] == original[1:3] and ids[4:] == original[4:]
    assert ids[0] not in original and ids[3] not in original
    assert f"new id {ids[0]!r}" in missing.warnings[0]
    duplicated = [cell.id for cell in import_ipynb(corpus.ids_duplicated()).cells]
    assert duplicated[1] == original[1]
    assert len(set(duplicated)) == len(duplicated)
    invalid = import_ipynb(corpus.ids_invalid())
    assert all(nbformat_id(cell.id) == cell.id for cell in invalid.cells)
    assert len(invalid.warnings) == 4


def test_repairs_change_nothing_else() -> None:
    _, exported = round_trip(corpus.ids_missing())
    expected = as_read(corpus.every_output_type())
    assert without_ids(as_read(exported)) == without_ids(expected)


def test_not_a_number_becomes_null() -> None:
    imported = import_ipynb(corpus.not_a_number())
    run = runs_of(imported)[imported.cells[4].id]
    assert run.ipynb is not None
    metadata = json.loads(run.ipynb)["outputs"][0]["metadata"]["application/json"]
    assert (metadata["expanded"], metadata["depth"]) == (None, None)


def test_many_repairs_are_summed_up() -> None:
    document = json.loads(corpus.thousand_cells())
    for cell in document["cells"]:
        del cell["id"]
    warnings = read_ipynb(json.dumps(document)).warnings
    assert len(warnings) == 101
    assert warnings[-1] == "… and 900 more repairs like these"


@pytest.mark.parametrize("name", sorted(corpus.BROKEN))
def test_unreadable_documents_are_refused_naming_the_place(name: str) -> None:
    body, expected = corpus.BROKEN[name]
    with pytest.raises(IpynbError) as caught:
        import_ipynb(body)
    assert str(caught.value).startswith(expected), str(caught.value)
    assert str(caught.value) == f"{caught.value.where}: {caught.value.problem}"
    assert len(str(caught.value)) < 300


def test_validation_messages_never_carry_the_whole_instance() -> None:
    big = {**corpus._CODE, "execution_count": "x" * 1_000_000, "outputs": []}
    with pytest.raises(IpynbError) as caught:
        import_ipynb(corpus._cells(big))
    assert caught.value.where == "cells[0].execution_count"
    assert len(str(caught.value)) < 300


# -- kernels, types, magics --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["julia", "r_kernel"])
def test_other_languages_keep_code_cells_with_nothing_read_or_written(name: str) -> None:
    imported = import_ipynb(corpus.VALID[name]())
    code = [cell for cell in imported.cells if cell.type not in ("markdown", "raw")]
    assert code and all(cell.type == "code" for cell in code)
    assert all((cell.reads, cell.writes) == ([], []) for cell in code)


def test_python_or_no_kernel_gives_python_cells_analysed() -> None:
    imported = import_ipynb(corpus.no_kernel())
    assert [(c.type, c.reads, c.writes) for c in imported.cells] == [
        ("python", [], ["x"]),
        ("python", ["x"], ["y"]),
    ]


@pytest.mark.parametrize(
    ("metadata", "python"),
    [
        ({}, True),
        ({"kernelspec": {"language": "python"}}, True),
        ({"language_info": {"name": "Python"}}, True),
        ({"kernelspec": {"language": "R"}}, False),
        ({"language_info": {"name": "julia"}, "kernelspec": {"language": "python"}}, False),
        ({"language_info": {"name": ""}, "kernelspec": {"language": "julia"}}, False),
        ({"language_info": "python"}, True),
    ],
)
def test_kernel_language(metadata: dict[str, Any], python: bool) -> None:
    assert is_python_kernel(metadata) is python


def test_magics_do_not_hide_names() -> None:
    imported = import_ipynb(corpus.magics())
    assert [(c.reads, c.writes) for c in imported.cells] == [
        ([], ["np"]),
        (["folder"], ["files", "total"]),
        ([], []),
        ([], []),
    ]


def test_cellar_metadata_decides_type_and_id() -> None:
    imported = import_ipynb(corpus.cellar_export())
    assert [(c.type, c.reads) for c in imported.cells] == [
        ("python", []),
        ("sql", ["x"]),
        ("python", ["x"]),
    ]
    assert imported.cells[2].id == "legacy.cell/1"
    assert imported.title == "Made in Cellar"


# -- notebooks made in Cellar ------------------------------------------------------------------


def app_cells() -> list[StoredCell]:
    return [
        make_cell("python", "x = 10", "11111111-1111-4111-8111-111111111111"),
        make_cell("sql", "SELECT {x}", "legacy.cell/2"),
        make_cell("markdown", "# notes"),
        make_cell("raw", "raw"),
        make_cell("code", "println(1)"),
        make_cell("python", "", "c" * 200),
    ]


def test_app_notebooks_export_as_valid_45_with_their_types() -> None:
    cells = app_cells()
    runs = {
        cells[0].id: RunState(
            cell_id=cells[0].id,
            status="success",
            stdout="10\n",
            outputs=msgspec.json.encode([Output("text/plain", "10", {})]).decode(),
        )
    }
    exported = export_ipynb(cells, runs, None, name="Demo ✓")
    assert_valid_nbformat(exported)
    document = as_read(exported)
    assert document["nbformat_minor"] == 5
    assert document["metadata"]["title"] == "Demo ✓"
    assert document["metadata"]["kernelspec"]["language"] == "python"
    types = [
        (cell["cell_type"], cell["metadata"].get("cellar", {}).get("type"))
        for cell in document["cells"]
    ]
    assert types == [
        ("code", "python"),
        ("code", "sql"),
        ("markdown", None),
        ("raw", None),
        ("code", "code"),
        ("code", "python"),
    ]
    reimported = import_ipynb(exported)
    assert [(c.id, c.type, c.code) for c in reimported.cells] == [
        (c.id, c.type, c.code) for c in cells
    ]
    assert reimported.title == "Demo ✓"
    run = runs_of(reimported)[cells[0].id]
    assert (run.stdout, outputs_of(run)) == ("10\n", [Output("text/plain", "10", {})])


def test_the_demo_notebook_exports_and_comes_back() -> None:
    cells = demo_cells()
    reimported = import_ipynb(export_ipynb(cells, {}, None, name="Demo"))
    assert [(c.id, c.type, c.code, c.reads, c.writes) for c in reimported.cells] == [
        (c.id, c.type, c.code, c.reads, c.writes) for c in cells
    ]


def test_cells_added_or_edited_in_the_app_export_in_order_with_their_outputs() -> None:
    imported = import_ipynb(corpus.julia())
    cells, runs, extra = stored(imported)
    edited = code_edit("code", "x = [4, 5]")
    cells[1] = msgspec.structs.replace(cells[1], code=edited.code)
    cells.reverse()
    cells.append(make_cell("python", "y = 1", "added-python"))
    cells.append(make_cell("markdown", "added"))
    exported = export_ipynb(cells, runs, extra)
    assert_valid_nbformat(exported)
    document = as_read(exported)
    assert [cell["source"] for cell in document["cells"]] == [
        "f(x) = x^2\nf.(x)",
        "x = [4, 5]",
        "Julia, not Python",
        "y = 1",
        "added",
    ]
    # The edit kept the cell's outputs, as Jupyter does.
    assert document["cells"][1]["outputs"][0]["text"] == "6\n"
    # A python cell in a Julia notebook must say so; Julia's own cells need not.
    assert document["cells"][3]["metadata"] == {"cellar": {"type": "python"}}
    assert document["cells"][1]["metadata"] == {}
    again = import_ipynb(exported)
    assert [c.type for c in again.cells] == ["code", "code", "markdown", "python", "markdown"]


def test_nbformat_id_is_the_id_when_valid_else_derived_and_valid() -> None:
    assert nbformat_id("abc-DEF_1") == "abc-DEF_1"
    derived = nbformat_id("legacy.cell/1")
    assert derived == nbformat_id("legacy.cell/1") != nbformat_id("legacy.cell/2")
    assert corpus_valid_id(derived) and corpus_valid_id(nbformat_id("x" * 300))


def corpus_valid_id(cell_id: str) -> bool:
    from app.ipynb.reading import CELL_ID

    return CELL_ID.fullmatch(cell_id) is not None
