"""app/legacy: decoding legacy files, owner and kind rules, comparison, export encoding, report.

Pure parts only (no database): what a file must look like to be imported,
which reason a bad one gets, and that export → decode gives the same notebook.
"""

from __future__ import annotations

import io
import json
from typing import Any

import msgspec
import pytest

from app.legacy.format import (
    EMPTY_OUTPUTS,
    UNDECRYPTABLE,
    Difference,
    ExportNotebook,
    FormatError,
    LegacyError,
    Limits,
    StoredNotebook,
    analysis_differences,
    differences,
    encode_export,
    export_cell,
    has_run_state,
    is_safe_file_stem,
    kind_of,
    owner_of,
    read_notebook,
    same_outputs,
)
from app.legacy.importer import Mode, check_external_id, failure, list_files, summary
from app.legacy.report import Counts, Report
from app.notebooks.cells import make_cell
from app.notebooks.schemas import StoredCell
from app.store.notebooks import RunState


def doc(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "nb1",
        "user_id": "user_1",
        "name": "A notebook",
        "db_conn_string": None,
        "revision": 3,
        "cells": [],
    }
    return {**base, **fields}


def cell(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "c1",
        "type": "python",
        "code": "x = 1",
        "outputs": [],
        "reads": [],
        "writes": ["x"],
    }
    return {**base, **fields}


DEFAULT = Limits()


def read(document: dict[str, Any] | bytes, stem: str = "nb1", limits: Limits = DEFAULT) -> Any:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return read_notebook(data, stem, limits)


def reason(document: dict[str, Any] | bytes, stem: str = "nb1", **limits: int) -> str:
    with pytest.raises(FormatError) as caught:
        read(document, stem, Limits(**limits))
    return str(caught.value)


# -- decoding ---------------------------------------------------------------------


def test_minimal_file_gets_the_defaults_of_a_cell_that_never_ran() -> None:
    notebook = read(doc(cells=[{"id": "c1", "type": "sql", "code": "SELECT 1"}]))
    (only,) = notebook.cells
    assert (only.status, only.stdout, bytes(only.outputs), only.error) == ("idle", "", b"[]", None)
    assert only.reads is None and only.writes is None  # absent: nothing to compare
    assert not has_run_state(only)
    assert notebook.revision == 3 and notebook.name == "A notebook"


def test_optional_notebook_fields_default() -> None:
    notebook = read({"id": "nb1", "cells": []})
    assert (notebook.user_id, notebook.name, notebook.db_conn_string, notebook.revision) == (
        None,
        None,
        None,
        0,
    )


def test_outputs_are_kept_byte_for_byte() -> None:
    outputs = (
        b'[ {"mime_type": "application/vnd.plotly.v1+json",\n   "data": {"data": [{"x": [1, 2.50,'
        b' 1e-7]}], "layout": {"title": "caf\\u00e9 \xf0\x9f\x93\x88"}}, "metadata": {}},'
        b' {"mime_type":"text/plain","data":"10"} ]'
    )
    data = b'{"id": "nb1", "cells": [{"id": "c1", "type": "python", "code": "", "outputs": '
    data += outputs + b"}]}"
    (only,) = read(data).cells
    assert bytes(only.outputs) == outputs
    assert has_run_state(only)


def test_empty_outputs_are_normalised_whatever_the_spacing() -> None:
    data = b'{"id": "nb1", "cells": [{"id": "c1", "type": "python", "code": "", "outputs": [ ]}]}'
    assert bytes(read(data).cells[0].outputs) == EMPTY_OUTPUTS


def test_unicode_and_emoji_code_and_names() -> None:
    code = "s = 'ünïcödé ✨ 🐍'  # 日本語\nprint(s)"
    notebook = read(doc(name="Ñotebook 🚀", cells=[cell(code=code)]))
    assert notebook.cells[0].code == code
    assert notebook.name == "Ñotebook 🚀"


def test_empty_user_id_counts_as_absent() -> None:
    assert read(doc(user_id="")).user_id is None


def test_metadata_is_accepted_and_kept() -> None:
    assert read(doc(cells=[cell(metadata={"tags": ["a"]})])).cells[0].metadata == {"tags": ["a"]}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "truncated"),
        (b'{"id": "nb1", "cells": [{"id": "c1", "type": "pyth', "truncated"),
        (b'{"id": "nb1", "cells": [}', "malformed"),
        (b"\xff\xfe{}", "malformed"),
        (b'{"id": "nb1", "cells": []} trailing', "malformed"),
        (b'{"id": "\\ud800", "cells": []}', "malformed"),
        (b"[1, 2]", "$: expected `object`, got `array`"),
        (b'{"id": "nb1"}', "missing required field `cells`"),
    ],
    ids=[
        "empty",
        "truncated",
        "malformed",
        "not-utf8",
        "trailing",
        "lone-surrogate",
        "array",
        "no-cells",
    ],
)
def test_broken_json_has_a_reason(data: bytes, expected: str) -> None:
    assert expected in reason(data)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (doc(cells={"c1": cell()}), "$.cells: expected `array`, got `object`"),
        (doc(cells=None), "$.cells: expected `array`, got `null`"),
        (doc(cells=[cell(type="ruby")]), "$.cells[0].type: invalid enum value 'ruby'"),
        (doc(cells=[cell(status="done")]), "$.cells[0].status: invalid enum value 'done'"),
        (doc(cells=[cell(), cell(code=1)]), "$.cells[1].code: expected `str`, got `int`"),
        (doc(revision=-1), "$.revision: expected `int` >= 0"),
        (doc(revision=2**63), "$.revision"),
        (doc(cells=[cell(outputs={"a": 1})]), "cells[0].outputs: expected `array`"),
        (doc(cells=[cell(outputs=None)]), "cells[0].outputs: expected `array`, got `null`"),
        (
            doc(cells=[cell(outputs=[{"data": "x"}])]),
            "cells[0].outputs[0]: object missing required field `mime_type`",
        ),
        (doc(cells=[cell(outputs=[{"mime_type": "", "data": 1}])]), "cells[0].outputs"),
        (doc(cells=[cell(), cell()]), "cells[1].id: duplicate cell id 'c1'"),
        (doc(cells=[cell(id="")]), "cells[0].id: must not be empty"),
        (doc(cells=[cell(id="x" * 256)]), "cells[0].id: longer than 255"),
        (doc(cells=[cell(code="a\x00b")]), "cells[0].code: contains a NUL"),
        (doc(cells=[cell(stdout="\x00")]), "cells[0].stdout: contains a NUL"),
        (doc(cells=[cell(metadata={"k": "\x00"})]), "cells[0].metadata: contains a NUL"),
        (doc(name="\x00"), "name: contains a NUL"),
        (doc(user_id="u" * 256), "user_id: longer than 255"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_invalid_content_has_a_reason_naming_the_field(
    document: dict[str, Any], expected: str
) -> None:
    assert expected in reason(document)


def test_invalid_utf8_inside_outputs_fails() -> None:
    data = (
        b'{"id": "nb1", "cells": [{"id": "c1", "type": "python", "code": "", '
        b'"outputs": [{"mime_type": "text/plain", "data": "\xc3\x28"}]}]}'
    )
    assert "outputs" in reason(data)


def test_the_id_must_match_the_file_name() -> None:
    assert "does not match the file name 'other.json'" in reason(doc(), stem="other")


def test_limits_of_the_service_apply() -> None:
    assert "MAX_CELLS_PER_NOTEBOOK" in reason(
        doc(cells=[cell(id=f"c{i}") for i in range(3)]), max_cells=2
    )
    assert "MAX_CELL_CODE_BYTES" in reason(doc(cells=[cell(code="é" * 60)]), max_code_bytes=100)
    assert "name: longer than 5" in reason(doc(name="abcdef"), max_name_length=5)
    big = [{"mime_type": "text/plain", "data": "x" * 200}]
    assert "MAX_CELL_OUTPUTS_BYTES" in reason(doc(cells=[cell(outputs=big)]), max_outputs_bytes=100)


def test_three_hundred_cells_decode_in_order() -> None:
    cells = [cell(id=f"c{i:03d}", code=f"v{i} = {i}") for i in range(300)]
    notebook = read(doc(cells=cells))
    assert [c.id for c in notebook.cells] == [f"c{i:03d}" for i in range(300)]


# -- owner and kind -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notebook_id", "user_id", "default", "owner"),
    [
        ("nb1", "user_1", "fallback", "user_1"),
        ("demo-user_37U0GVSi47Y4pucE7h9iZVesr4b", None, None, "user_37U0GVSi47Y4pucE7h9iZVesr4b"),
        ("blank-user_abc", None, "fallback", "user_abc"),
        ("demo-user_abc", "user_other", None, "user_other"),
        ("nb1", None, "fallback", "fallback"),
        ("demo-", None, "fallback", "fallback"),
        ("nb1", None, None, None),
        ("demo-", None, None, None),
    ],
)
def test_owner_of(notebook_id: str, user_id: str | None, default: str | None, owner: str) -> None:
    notebook = read({"id": notebook_id, "user_id": user_id, "cells": []}, stem=notebook_id)
    assert owner_of(notebook, default) == owner


@pytest.mark.parametrize(
    ("notebook_id", "owner", "kind"),
    [
        ("demo-user_1", "user_1", "demo"),
        ("blank-user_1", "user_1", "blank"),
        ("demo-user_1", "user_2", "user"),  # names someone else: not this owner's demo
        ("demo-", "user_1", "user"),
        ("demonstration", "user_1", "user"),
        ("my-demo-user_1", "user_1", "user"),
        ("7b0a1c1e-6f2a-4c1e-9f55-0a5f1e2d3c4b", "user_1", "user"),
    ],
)
def test_kind_of(notebook_id: str, owner: str, kind: str) -> None:
    assert kind_of(notebook_id, owner) == kind


def test_check_external_id() -> None:
    assert check_external_id("  user_1 ", "--default-owner") == "user_1"
    for bad in ("", "   ", "x" * 256, "a\x00b"):
        with pytest.raises(LegacyError, match="--default-owner"):
            check_external_id(bad, "--default-owner")


# -- comparing with the database ------------------------------------------------------


def stored_from(notebook: Any, owner: str = "user_1", **changes: Any) -> StoredNotebook:
    """What the database would hold after importing ``notebook``."""
    cells = [make_cell(c.type, c.code, c.id, c.metadata) for c in notebook.cells]
    runs = {
        c.id: RunState(c.id, c.status, c.stdout, bytes(c.outputs).decode(), c.error)
        for c in notebook.cells
        if has_run_state(c)
    }
    values: dict[str, Any] = {
        "id": notebook.id,
        "owner": owner,
        "name": notebook.name,
        "db_conn_string": notebook.db_conn_string,
        "revision": notebook.revision,
        "cells": cells,
        "runs": runs,
    }
    return StoredNotebook(**{**values, **changes})


RICH = doc(
    db_conn_string="postgresql://u:pw@h/db",
    cells=[
        cell(
            id="a",
            status="success",
            stdout="out\n",
            outputs=[{"mime_type": "text/plain", "data": "1", "metadata": {}}],
        ),
        cell(id="b", type="sql", code="SELECT {x}", reads=["x"], writes=[]),
        cell(id="c", status="error", error="NameError: y"),
    ],
)


def fields(found: list[Difference]) -> list[tuple[str | None, str]]:
    return [(d.cell_id, d.field) for d in found]


def test_same_content_has_no_differences() -> None:
    notebook = read(RICH)
    assert differences(notebook, "user_1", stored_from(notebook)) == []


def test_a_revision_behind_the_database_is_not_a_difference() -> None:
    notebook = read(RICH)
    assert differences(notebook, "user_1", stored_from(notebook, revision=9)) == []
    ahead = differences(notebook, "user_1", stored_from(notebook, revision=1))
    assert fields(ahead) == [(None, "revision")]


def test_every_field_is_compared() -> None:
    notebook = read(RICH)
    stored = stored_from(notebook)
    cells = [
        msgspec.structs.replace(stored.cells[0], code="x = 2"),
        msgspec.structs.replace(stored.cells[1], type="python", metadata={"k": 1}),
        stored.cells[2],
    ]
    runs = {
        "a": msgspec.structs.replace(
            stored.runs["a"], outputs='[{"mime_type":"text/plain","data":"2"}]'
        ),
        "c": msgspec.structs.replace(stored.runs["c"], status="success", stdout="x", error=None),
    }
    changed = stored_from(
        notebook,
        owner="user_2",
        name="Other",
        db_conn_string=UNDECRYPTABLE,
        cells=cells,
        runs=runs,
    )
    assert fields(differences(notebook, "user_1", changed)) == [
        (None, "user_id"),
        (None, "name"),
        (None, "db_conn_string"),
        ("a", "code"),
        ("a", "outputs"),
        ("b", "type"),
        ("b", "metadata"),
        ("c", "status"),
        ("c", "stdout"),
        ("c", "error"),
    ]


def test_a_cell_without_a_run_row_is_idle() -> None:
    notebook = read(RICH)
    stored = stored_from(notebook, runs={})
    assert fields(differences(notebook, "user_1", stored)) == [
        ("a", "status"),
        ("a", "stdout"),
        ("a", "outputs"),
        ("c", "status"),
        ("c", "error"),
    ]
    assert "b" not in stored.runs


def test_outputs_are_compared_as_values() -> None:
    """Spacing, key order and a left-out ``metadata`` are the same outputs; values are not."""
    notebook = read(RICH)
    stored = stored_from(notebook)
    spelled = '[ {"data": "1", "mime_type": "text/plain"} ]'
    assert same_outputs(spelled.encode(), b'[{"mime_type":"text/plain","data":"1","metadata":{}}]')
    assert not same_outputs(spelled.encode(), b'[{"mime_type":"text/plain","data":"2"}]')
    assert not same_outputs(b"[]", b"not json")
    compact = msgspec.json.encode(msgspec.json.decode(bytes(notebook.cells[0].outputs))).decode()
    assert compact.encode() != bytes(notebook.cells[0].outputs)
    runs = {**stored.runs, "a": msgspec.structs.replace(stored.runs["a"], outputs=compact)}
    assert differences(notebook, "user_1", stored_from(notebook, runs=runs)) == []
    other = msgspec.structs.replace(stored.runs["a"], outputs="[]")
    changed = stored_from(notebook, runs={**stored.runs, "a": other})
    assert fields(differences(notebook, "user_1", changed)) == [("a", "outputs")]


def test_added_removed_and_moved_cells() -> None:
    notebook = read(RICH)
    stored = stored_from(notebook)
    extra = make_cell("python", "", "z")
    reordered = stored_from(
        notebook, cells=[stored.cells[2], stored.cells[1], extra], runs=stored.runs
    )
    found = differences(notebook, "user_1", reordered)
    assert fields(found)[:3] == [("a", "cell"), ("z", "cell"), (None, "cell order")]
    assert repr(found[0].file) == "present" and repr(found[0].db) == "missing"
    assert found[2].file == ["b", "c"] and found[2].db == ["c", "b"]


def test_analysis_differences_ignore_order_and_absent_lists() -> None:
    notebook = read(
        doc(
            cells=[
                cell(id="a", code="y = x + z", reads=["z", "x"], writes=["y"]),
                cell(id="b", code="y = x", reads=["q"], writes=["y", "extra"]),
                {"id": "c", "type": "python", "code": "y = x"},
            ]
        )
    )
    computed = [make_cell(c.type, c.code, c.id) for c in notebook.cells]
    assert analysis_differences("nb1", notebook.cells[0], computed[0]) == []
    assert fields(analysis_differences("nb1", notebook.cells[1], computed[1])) == [
        ("b", "reads"),
        ("b", "writes"),
    ]
    assert analysis_differences("nb1", notebook.cells[2], computed[2]) == []


def test_difference_lines_are_short() -> None:
    line = Difference("nb1", "c1", "code", "x" * 500, "y").describe()
    assert line.startswith("nb1 c1 code: file='xxx")
    assert "(502 chars)" in line and len(line) < 120
    assert Difference("nb1", None, "name", "a", None).describe() == "nb1 - name: file='a' db=None"
    outputs = Difference("nb1", "c", "outputs", b'[{"a":1}]', b"[]").describe()
    assert outputs == "nb1 c outputs: file='[{\"a\":1}]' db='[]'"


# -- export ---------------------------------------------------------------------------


def test_export_writes_the_legacy_shape_in_order() -> None:
    stored = StoredCell(id="c1", type="python", code="x = 1", writes=["x"])
    run = RunState("c1", "success", "1\n", '[ {"mime_type": "text/plain", "data": "1"} ]', None)
    notebook = ExportNotebook(
        id="nb1",
        user_id="user_1",
        name="N",
        db_conn_string="postgresql://u:pw@h/db",
        revision=4,
        cells=[export_cell(stored, run), export_cell(StoredCell("c2", "sql", "SELECT 1"), None)],
    )
    data = encode_export(notebook)
    assert data.endswith(b"}\n")
    assert b'"outputs":[ {"mime_type": "text/plain", "data": "1"} ]' in data  # as stored
    decoded = json.loads(data)
    assert list(decoded) == ["id", "user_id", "name", "db_conn_string", "revision", "cells"]
    assert list(decoded["cells"][0]) == [
        "id",
        "type",
        "code",
        "status",
        "stdout",
        "outputs",
        "error",
        "reads",
        "writes",
    ]
    assert decoded["cells"][1] == {
        "id": "c2",
        "type": "sql",
        "code": "SELECT 1",
        "status": "idle",
        "stdout": "",
        "outputs": [],
        "error": None,
        "reads": [],
        "writes": [],
    }


def test_export_omits_a_missing_user_id_and_empty_metadata_only() -> None:
    with_metadata = StoredCell("c1", "raw", "", metadata={"k": 1})
    notebook = ExportNotebook(
        id="nb1",
        name=None,
        db_conn_string=None,
        revision=0,
        cells=[export_cell(with_metadata, None)],
    )
    decoded = json.loads(encode_export(notebook))
    assert "user_id" not in decoded
    assert decoded["name"] is None and decoded["db_conn_string"] is None
    assert decoded["cells"][0]["metadata"] == {"k": 1}


def test_import_then_export_is_a_fixed_point_of_the_normal_form() -> None:
    original = read(RICH)
    stored = stored_from(original)
    exported = encode_export(
        ExportNotebook(
            id=stored.id,
            user_id=stored.owner,
            name=stored.name,
            db_conn_string=str(stored.db_conn_string),
            revision=stored.revision,
            cells=[export_cell(c, stored.runs.get(c.id)) for c in stored.cells],
        )
    )
    again = read_notebook(exported, "nb1")
    assert again == original
    assert differences(again, "user_1", stored) == []


@pytest.mark.parametrize(
    ("notebook_id", "safe"),
    [
        ("demo-user_1", True),
        ("7b0a1c1e-6f2a-4c1e-9f55-0a5f1e2d3c4b", True),
        ("", False),
        (".hidden", False),
        ("../escape", False),
        ("a/b", False),
        ("a\\b", False),
        ("x" * 251, False),
    ],
)
def test_is_safe_file_stem(notebook_id: str, safe: bool) -> None:
    assert is_safe_file_stem(notebook_id) is safe


# -- listing, report, summary -----------------------------------------------------------


def test_list_files_streams_names_only_sorted(tmp_path: Any) -> None:
    for name in ("b.json", "a.json", ".a.json.x.tmp", ".hidden.json", "notes.txt", "c.JSON"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "dir.json").mkdir()
    assert list_files(tmp_path) == ["a.json", "b.json"]
    with pytest.raises(LegacyError, match="no such directory"):
        list_files(tmp_path / "missing")
    with pytest.raises(LegacyError, match="not a directory"):
        list_files(tmp_path / "a.json")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_report_without_a_terminal_prints_a_plain_line_every_n_files() -> None:
    out, err, clock = io.StringIO(), io.StringIO(), Clock()
    report = Report(out, err, tty=False, every=2, interval=100, clock=clock)
    report.start(5, "import")
    for _ in range(5):
        clock.now += 0.5
        report.advance()
    report.line("failed x.json: reason")
    assert err.getvalue().splitlines() == ["import: 2/5 files (2/s)", "import: 4/5 files (2/s)"]
    assert "\r" not in err.getvalue()
    assert out.getvalue() == "failed x.json: reason\n"


def test_report_without_a_terminal_also_prints_every_interval() -> None:
    err, clock = io.StringIO(), Clock()
    report = Report(io.StringIO(), err, tty=False, every=1000, interval=5, clock=clock)
    report.start(10, "import")
    clock.now = 6
    report.advance()
    assert err.getvalue() == "import: 1/10 files (0/s)\n"


def test_report_on_a_terminal_redraws_one_line_and_clears_it_for_report_lines() -> None:
    out, err, clock = io.StringIO(), io.StringIO(), Clock()
    report = Report(out, err, tty=True, clock=clock)
    report.start(4, "import")
    clock.now = 1
    report.advance(2)
    assert err.getvalue().endswith("\rimport [###############...............] 2/4 2/s\x1b[K")
    report.line("note a.json: x")
    assert out.getvalue() == "note a.json: x\n"
    assert "\r\x1b[K\rimport [" in err.getvalue()  # cleared, then drawn again
    report.finish()
    assert err.getvalue().endswith("\r\x1b[K")
    assert "\n" not in err.getvalue()


def test_summary_lines() -> None:
    counts = Counts(imported=3, updated=1, unchanged=2, skipped=1, failed=1, users_created=2)
    counts.elapsed = 2.0
    assert summary(counts, Mode.IMPORT) == (
        "imported 3, updated 1, unchanged 2, skipped 1, failed 1 in 2.00 s (4 notebooks/s); "
        "created 2 users"
    )
    assert summary(counts, Mode.DRY_RUN).startswith(
        "dry run, nothing written: would import 3, would update 1, unchanged 2"
    )
    assert failure(counts, Mode.IMPORT) == "1 of 8 files failed"
    quiet = Counts(unchanged=5, elapsed=1.0)
    assert summary(quiet, Mode.IMPORT).endswith("; nothing to change")
    assert failure(quiet, Mode.IMPORT) is None
    verify = Counts(unchanged=4, differ=1, missing=1, elapsed=1.0)
    assert summary(verify, Mode.VERIFY).startswith("verify: 6 files: 4 match, 1 differ, 1 missing")
    assert failure(verify, Mode.VERIFY) is not None
    assert failure(Counts(unchanged=4), Mode.VERIFY) is None
