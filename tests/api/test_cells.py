"""SPEC §3 cell routes over HTTP: insert, update, delete, move and run outputs, with their
bounds (index, code size, outputs size, cells per notebook) and revision checks."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib
from typing import Any

import pytest

from app.database import connection
from app.notebooks.tables import CellRun, Notebook
from tests.api.test_notebooks import (
    add_cell,
    assert_bad_field,
    create_notebook,
    fresh_user_headers,
    get_notebook,
    list_notebooks,
    write_outputs,
)

KIB = 1024
MIB = 1024 * KIB


async def _setup(client: Any) -> tuple[dict[str, str], str, str]:
    """A fresh user, a new notebook and the id of its one blank cell."""
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    cell_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    return headers, notebook_id, cell_id


async def _codes(client: Any, headers: dict[str, str], notebook_id: str) -> list[str]:
    return [c["code"] for c in (await get_notebook(client, headers, notebook_id))["cells"]]


async def _runs(notebook_id: str, cell_id: str | None = None) -> int:
    query = CellRun.count().where(CellRun.notebook == notebook_id)
    if cell_id is not None:
        query = query.where(CellRun.cell_id == cell_id)
    return int(await query)


def _png() -> bytes:
    """A real 2x2 RGBA PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes([255, 0, 0, 255, 0, 255, 0, 128]) for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# -- POST /notebooks/{id}/cells ------------------------------------------------------------


async def test_insert_cell_appends_by_default(client: Any) -> None:
    headers, notebook_id, blank_id = await _setup(client)
    response = await client.post(
        f"/notebooks/{notebook_id}/cells",
        json={"type": "python", "code": "y = x + 1"},
        headers=headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"cell", "revision"}
    assert body["revision"] == 1
    cell = body["cell"]
    assert (cell["type"], cell["code"], cell["reads"], cell["writes"]) == (
        "python",
        "y = x + 1",
        ["x"],
        ["y"],
    )
    assert (cell["metadata"], cell["status"], cell["stdout"], cell["outputs"], cell["error"]) == (
        {},
        "idle",
        "",
        [],
        None,
    )
    notebook = await get_notebook(client, headers, notebook_id)
    assert [c["id"] for c in notebook["cells"]] == [blank_id, cell["id"]]
    assert notebook["cells"][1] == cell
    assert notebook["revision"] == 1


async def test_insert_cell_without_code_is_empty(client: Any) -> None:
    headers, notebook_id, _ = await _setup(client)
    cell = await add_cell(client, headers, notebook_id, cell_type="sql")
    assert (cell["type"], cell["code"], cell["reads"], cell["writes"]) == ("sql", "", [], [])


async def test_insert_cell_positions(client: Any) -> None:
    headers, notebook_id, blank_id = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{blank_id}", json={"code": "b = 1"}, headers=headers
    )
    assert response.status_code == 200
    await add_cell(client, headers, notebook_id, "a = 1", index=0)
    await add_cell(client, headers, notebook_id, "d = 1", index=2)  # index == count appends
    await add_cell(client, headers, notebook_id, "c = 1", index=2)
    await add_cell(client, headers, notebook_id, "e = 1")
    assert await _codes(client, headers, notebook_id) == [
        "a = 1",
        "b = 1",
        "c = 1",
        "d = 1",
        "e = 1",
    ]


async def test_insert_into_an_empty_notebook(client: Any) -> None:
    headers, notebook_id, blank_id = await _setup(client)
    response = await client.delete(f"/notebooks/{notebook_id}/cells/{blank_id}", headers=headers)
    assert response.status_code == 200
    assert (await get_notebook(client, headers, notebook_id))["cells"] == []
    response = await client.post(
        f"/notebooks/{notebook_id}/cells", json={"type": "python", "index": 1}, headers=headers
    )
    assert_bad_field(response, "index")
    await add_cell(client, headers, notebook_id, "first = 1", index=0)
    await add_cell(client, headers, notebook_id, "second = 1")
    assert await _codes(client, headers, notebook_id) == ["first = 1", "second = 1"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "python", "index": 2}, "index"),
        ({"type": "python", "index": 1000}, "index"),
        ({"type": "python", "index": -1}, "index"),
        ({"type": "python", "index": 0.5}, "index"),
        ({"type": "javascript"}, "type"),
        ({"type": "PYTHON"}, "type"),
        ({"type": None}, "type"),
        ({"type": "python", "code": 5}, "code"),
        ({"type": "python", "expected_revision": -1}, "expected_revision"),
    ],
)
async def test_insert_cell_bad_body_is_400_naming_the_field(
    client: Any, body: dict[str, Any], field: str
) -> None:
    headers, notebook_id, _ = await _setup(client)
    response = await client.post(f"/notebooks/{notebook_id}/cells", json=body, headers=headers)
    assert_bad_field(response, field)
    notebook = await get_notebook(client, headers, notebook_id)
    assert (notebook["revision"], len(notebook["cells"])) == (0, 1)


async def test_insert_cell_missing_type_is_400(client: Any) -> None:
    headers, notebook_id, _ = await _setup(client)
    response = await client.post(
        f"/notebooks/{notebook_id}/cells", json={"code": "a = 1"}, headers=headers
    )
    assert response.status_code == 400
    assert "type" in response.json()["detail"]


async def test_client_sent_reads_and_writes_are_ignored(client: Any) -> None:
    headers, notebook_id, _ = await _setup(client)
    response = await client.post(
        f"/notebooks/{notebook_id}/cells",
        json={
            "type": "python",
            "code": "total = price * qty",
            "reads": ["evil"],
            "writes": ["everything"],
            "id": "chosen-by-client",
            "status": "success",
            "outputs": [{"mime_type": "text/plain", "data": "fake"}],
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    cell = response.json()["cell"]
    assert (cell["reads"], cell["writes"]) == (["price", "qty"], ["total"])
    assert cell["id"] != "chosen-by-client"
    assert (cell["status"], cell["outputs"]) == ("idle", [])
    stored = (await get_notebook(client, headers, notebook_id))["cells"][1]
    assert (stored["reads"], stored["writes"], stored["outputs"]) == (
        ["price", "qty"],
        ["total"],
        [],
    )

    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell['id']}",
        json={"code": "a = b", "reads": ["evil"], "writes": ["evil"]},
        headers=headers,
    )
    assert response.status_code == 200
    assert (response.json()["cell"]["reads"], response.json()["cell"]["writes"]) == (["b"], ["a"])


async def test_insert_sql_and_markdown_cells(client: Any) -> None:
    headers, notebook_id, _ = await _setup(client)
    sql = await add_cell(
        client, headers, notebook_id, "SELECT * FROM t WHERE a = {x} AND b = {y}", "sql"
    )
    assert (sql["reads"], sql["writes"]) == (["x", "y"], [])
    markdown = await add_cell(client, headers, notebook_id, "# x = {y}", "markdown")
    assert (markdown["reads"], markdown["writes"]) == ([], [])


async def test_syntax_error_is_saved_with_empty_reads_and_writes(client: Any) -> None:
    headers, notebook_id, _ = await _setup(client)
    cell = await add_cell(client, headers, notebook_id, "def broken(:\n    y = x")
    assert (cell["reads"], cell["writes"]) == ([], [])
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell['id']}", json={"code": "z = x +"}, headers=headers
    )
    assert response.status_code == 200
    stored = (await get_notebook(client, headers, notebook_id))["cells"][1]
    assert (stored["code"], stored["reads"], stored["writes"]) == ("z = x +", [], [])


async def test_code_size_limit(client: Any) -> None:
    headers, notebook_id, _ = await _setup(client)
    url = f"/notebooks/{notebook_id}/cells"
    accepted = "# " + "a" * (255 * KIB - 2)
    response = await client.post(url, json={"type": "python", "code": accepted}, headers=headers)
    assert response.status_code == 201
    cell_id = response.json()["cell"]["id"]
    exactly = "#" + "b" * (256 * KIB - 1)
    response = await client.post(url, json={"type": "python", "code": exactly}, headers=headers)
    assert response.status_code == 201

    too_big = "#" + "c" * (256 * KIB)
    response = await client.post(url, json={"type": "python", "code": too_big}, headers=headers)
    assert_bad_field(response, "code")
    # Under the limit in characters, over it in UTF-8 bytes.
    wide = "# " + "€" * (90 * KIB)
    response = await client.post(url, json={"type": "python", "code": wide}, headers=headers)
    assert_bad_field(response, "code")
    response = await client.put(f"{url}/{cell_id}", json={"code": too_big}, headers=headers)
    assert_bad_field(response, "code")
    response = await client.put(f"{url}/{cell_id}", json={"code": wide}, headers=headers)
    assert_bad_field(response, "code")

    notebook = await get_notebook(client, headers, notebook_id)
    assert notebook["revision"] == 2
    assert [len(c["code"]) for c in notebook["cells"]] == [0, 255 * KIB, 256 * KIB]


# -- PUT /notebooks/{id}/cells/{cell_id} ---------------------------------------------------


async def test_update_cell(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    other = await add_cell(client, headers, notebook_id, "keep = 1")
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}",
        json={"code": "import numpy as np\nout = np.array(data)", "expected_revision": 1},
        headers=headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "revision", "cell", "merged"}
    assert body["merged"] is False
    assert (body["status"], body["revision"]) == ("ok", 2)
    cell = body["cell"]
    assert cell["id"] == cell_id
    assert (cell["reads"], cell["writes"]) == (["data"], ["np", "out"])
    notebook = await get_notebook(client, headers, notebook_id)
    assert notebook["cells"][0] == cell
    assert notebook["cells"][1]["code"] == other["code"]
    assert notebook["revision"] == 2


async def test_update_keeps_type_metadata_and_the_other_cells(client: Any) -> None:
    """Only code, reads and writes change; an sql cell stays sql (and is analysed as sql)."""
    headers, notebook_id, _ = await _setup(client)
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET cells = $2::jsonb WHERE id = $1",
            notebook_id,
            json.dumps(
                [
                    {"id": "a", "type": "python", "code": "x = 1", "reads": [], "writes": ["x"],
                     "metadata": {}},
                    {"id": "b", "type": "sql", "code": "SELECT 1", "reads": [], "writes": [],
                     "metadata": {"tags": ["imported"], "collapsed": True}},
                    {"id": "c", "type": "markdown", "code": "# notes", "reads": [], "writes": [],
                     "metadata": {}},
                ]
            ),
        )  # fmt: skip
    before = await get_notebook(client, headers, notebook_id)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/b", json={"code": "SELECT * FROM t WHERE n > {x}"},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    cell = response.json()["cell"]
    assert (cell["id"], cell["type"], cell["metadata"]) == (
        "b", "sql", {"tags": ["imported"], "collapsed": True},
    )  # fmt: skip
    assert (cell["code"], cell["reads"]) == ("SELECT * FROM t WHERE n > {x}", ["x"])
    after = await get_notebook(client, headers, notebook_id)
    assert [c["id"] for c in after["cells"]] == ["a", "b", "c"]
    assert after["cells"][1] == cell
    assert after["cells"][0] == before["cells"][0]
    assert after["cells"][2] == before["cells"][2]
    assert after["revision"] == before["revision"] + 1


async def test_update_cell_stale_expected_revision_is_409(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    url = f"/notebooks/{notebook_id}/cells/{cell_id}"
    assert (await client.put(url, json={"code": "a = 1"}, headers=headers)).status_code == 200
    response = await client.put(
        url, json={"code": "a = 2", "expected_revision": 0}, headers=headers
    )
    assert response.status_code == 409
    assert response.json()["revision"] == 1
    response = await client.put(url, json={"code": "a = 3"}, headers={**headers, "If-Match": '"0"'})
    assert response.status_code == 412
    assert response.json()["revision"] == 1
    notebook = await get_notebook(client, headers, notebook_id)
    assert (notebook["cells"][0]["code"], notebook["revision"]) == ("a = 1", 1)


async def test_update_keeps_outputs(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    outputs = [{"mime_type": "text/plain", "data": "42", "metadata": {"k": [1, 2]}}]
    await write_outputs(
        client, headers, notebook_id, cell_id, stdout="hello\n", outputs=outputs, error=None
    )
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}", json={"code": "x = 42\nx"}, headers=headers
    )
    assert response.status_code == 200
    returned = response.json()["cell"]
    assert (returned["status"], returned["stdout"], returned["outputs"]) == (
        "success",
        "hello\n",
        outputs,
    )
    cell = (await get_notebook(client, headers, notebook_id))["cells"][0]
    assert cell["code"] == "x = 42\nx"
    assert cell["writes"] == ["x"]
    assert (cell["status"], cell["stdout"], cell["outputs"], cell["error"]) == (
        "success",
        "hello\n",
        outputs,
        None,
    )


async def test_update_unknown_cell_is_404(client: Any) -> None:
    headers, notebook_id, _ = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/no-such-cell", json={"code": "a = 1"}, headers=headers
    )
    assert response.status_code == 404
    assert "cell" in response.json()["detail"]
    assert (await get_notebook(client, headers, notebook_id))["revision"] == 0


@pytest.mark.parametrize("body", [{}, {"code": None}, {"code": 1}, {"code": ["a"]}])
async def test_update_cell_bad_body_is_400(client: Any, body: dict[str, Any]) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}", json=body, headers=headers
    )
    assert response.status_code == 400
    assert "code" in response.json()["detail"]
    assert (await get_notebook(client, headers, notebook_id))["revision"] == 0


async def test_concurrent_edits_of_different_cells_both_survive(client: Any) -> None:
    headers, notebook_id, first_id = await _setup(client)
    second = await add_cell(client, headers, notebook_id, "")
    cells = [first_id, second["id"]] * 5
    responses = await asyncio.gather(
        *(
            client.put(
                f"/notebooks/{notebook_id}/cells/{cell_id}",
                json={"code": f"v{index} = {index}"},
                headers=headers,
            )
            for index, cell_id in enumerate(cells)
        )
    )
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.json()["revision"] for r in responses) == list(range(2, 12))
    notebook = await get_notebook(client, headers, notebook_id)
    assert notebook["revision"] == 11
    # Each cell holds the code of its last save (the highest revision among its edits).
    in_commit_order = sorted(
        zip(cells, responses, strict=True), key=lambda pair: pair[1].json()["revision"]
    )
    last = {cell_id: response.json()["cell"]["code"] for cell_id, response in in_commit_order}
    assert {c["id"]: c["code"] for c in notebook["cells"]} == last


# -- DELETE /notebooks/{id}/cells/{cell_id} ------------------------------------------------


async def test_delete_cell(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    kept = await add_cell(client, headers, notebook_id, "kept = 1")
    await write_outputs(client, headers, notebook_id, cell_id, stdout="gone")
    await write_outputs(client, headers, notebook_id, kept["id"], stdout="stays")
    url = f"/notebooks/{notebook_id}/cells/{cell_id}"

    response = await client.delete(url, params={"expected_revision": 0}, headers=headers)
    assert response.status_code == 409
    assert response.json()["revision"] == 1
    assert await _runs(notebook_id, cell_id) == 1

    response = await client.delete(url, params={"expected_revision": 1}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "revision": 2}
    notebook = await get_notebook(client, headers, notebook_id)
    assert [c["id"] for c in notebook["cells"]] == [kept["id"]]
    assert notebook["cells"][0]["stdout"] == "stays"
    assert await _runs(notebook_id, cell_id) == 0
    assert await _runs(notebook_id) == 1

    again = await client.delete(url, headers=headers)
    assert again.status_code == 404
    assert (await get_notebook(client, headers, notebook_id))["revision"] == 2


async def test_delete_cell_bad_expected_revision_is_400(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    url = f"/notebooks/{notebook_id}/cells/{cell_id}"
    for value in ("-1", "abc"):
        response = await client.delete(url, params={"expected_revision": value}, headers=headers)
        assert response.status_code == 400, response.text
        assert "expected_revision" in response.text
    assert len((await get_notebook(client, headers, notebook_id))["cells"]) == 1


# -- POST /notebooks/{id}/cells/{cell_id}/move ---------------------------------------------


async def _abcd(client: Any) -> tuple[dict[str, str], str, dict[str, str]]:
    """A notebook with cells a, b, c, d (revision 4); returns code → id."""
    headers, notebook_id, first_id = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{first_id}", json={"code": "a"}, headers=headers
    )
    assert response.status_code == 200
    ids = {"a": first_id}
    for code in "bcd":
        ids[code] = (await add_cell(client, headers, notebook_id, code))["id"]
    return headers, notebook_id, ids


async def test_move_cell(client: Any) -> None:
    headers, notebook_id, ids = await _abcd(client)
    base = f"/notebooks/{notebook_id}/cells"

    response = await client.post(f"{base}/{ids['a']}/move", json={"index": 2}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "revision": 5}
    assert await _codes(client, headers, notebook_id) == ["b", "c", "a", "d"]

    response = await client.post(
        f"{base}/{ids['d']}/move", json={"index": 0, "expected_revision": 5}, headers=headers
    )
    assert response.json() == {"status": "ok", "revision": 6}
    assert await _codes(client, headers, notebook_id) == ["d", "b", "c", "a"]

    response = await client.post(f"{base}/{ids['d']}/move", json={"index": 3}, headers=headers)
    assert response.status_code == 200
    assert await _codes(client, headers, notebook_id) == ["b", "c", "a", "d"]

    response = await client.post(f"{base}/{ids['c']}/move", json={"index": 1}, headers=headers)
    assert response.json()["revision"] == 8  # moving to where it is still counts as a change
    assert await _codes(client, headers, notebook_id) == ["b", "c", "a", "d"]
    notebook = await get_notebook(client, headers, notebook_id)
    assert {c["code"]: c["id"] for c in notebook["cells"]} == ids


async def test_move_cell_keeps_its_outputs(client: Any) -> None:
    headers, notebook_id, ids = await _abcd(client)
    await write_outputs(client, headers, notebook_id, ids["b"], stdout="b ran")
    response = await client.post(
        f"/notebooks/{notebook_id}/cells/{ids['b']}/move", json={"index": 3}, headers=headers
    )
    assert response.status_code == 200
    cells = (await get_notebook(client, headers, notebook_id))["cells"]
    assert [(c["code"], c["stdout"]) for c in cells] == [
        ("a", ""),
        ("c", ""),
        ("d", ""),
        ("b", "b ran"),
    ]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"index": 4}, 400, "index"),
        ({"index": 100}, 400, "index"),
        ({"index": -1}, 400, "index"),
        ({}, 400, "index"),
        ({"index": 0, "expected_revision": 3}, 409, None),
    ],
)
async def test_move_cell_errors(
    client: Any, body: dict[str, Any], status: int, field: str | None
) -> None:
    headers, notebook_id, ids = await _abcd(client)
    response = await client.post(
        f"/notebooks/{notebook_id}/cells/{ids['c']}/move", json=body, headers=headers
    )
    assert response.status_code == status, response.text
    if field is not None:
        assert field in response.json()["detail"]
    else:
        assert response.json()["revision"] == 4
    notebook = await get_notebook(client, headers, notebook_id)
    assert ([c["code"] for c in notebook["cells"]], notebook["revision"]) == (
        ["a", "b", "c", "d"],
        4,
    )


async def test_move_unknown_cell_is_404(client: Any) -> None:
    headers, notebook_id, _ = await _abcd(client)
    response = await client.post(
        f"/notebooks/{notebook_id}/cells/nope/move", json={"index": 0}, headers=headers
    )
    assert response.status_code == 404
    assert await _codes(client, headers, notebook_id) == ["a", "b", "c", "d"]


async def test_move_unknown_cell_of_an_empty_notebook_is_404(client: Any) -> None:
    """The cell is looked for before the index is checked against the (empty) list."""
    headers, notebook_id, blank_id = await _setup(client)
    response = await client.delete(f"/notebooks/{notebook_id}/cells/{blank_id}", headers=headers)
    assert response.status_code == 200
    response = await client.post(
        f"/notebooks/{notebook_id}/cells/nope/move", json={"index": 0}, headers=headers
    )
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == "cell not found"
    response = await client.post(
        f"/notebooks/{notebook_id}/cells/nope/move", json={"index": 5}, headers=headers
    )
    assert response.status_code == 404, response.text
    assert (await get_notebook(client, headers, notebook_id))["revision"] == 1


# -- PUT /notebooks/{id}/cells/{cell_id}/outputs -------------------------------------------


async def test_outputs_round_trip_byte_for_byte(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    png = base64.b64encode(_png()).decode("ascii")
    plotly: dict[str, Any] = {
        "data": [
            {
                "type": "bar",
                "x": ["apple", "banana", "çerise ☕"],
                "y": [10, 15.5, -2.25e-7],
                "marker": {"color": "#636efa", "line": {"width": 0}},
                "showlegend": False,
                "customdata": [[1, None], [True, {"deep": [[], {}]}]],
            }
        ],
        "layout": {"title": {"text": "Values by fruit"}, "xaxis": {"range": [0, None]}},
        "config": {"responsive": True, "big": 12345678901234567},
    }
    outputs: list[dict[str, Any]] = [
        {"mime_type": "text/plain", "data": '   y\n0  15\n\ttabs \\ and "quotes"\n'},
        {"mime_type": "text/html", "data": "<table><tr><td>é</td></tr></table>"},
        {"mime_type": "application/vnd.plotly.v1+json", "data": plotly},
        {"mime_type": "image/png", "data": png, "metadata": {"width": 2, "height": 2}},
        {"mime_type": "application/json", "data": [1, "two", 3.5, None, False]},
    ]
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs",
        json={"status": "success", "stdout": "printed\n", "outputs": outputs, "error": None},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}

    cell = (await get_notebook(client, headers, notebook_id))["cells"][0]
    assert (cell["status"], cell["stdout"], cell["error"]) == ("success", "printed\n", None)
    expected = [{**output, "metadata": output.get("metadata", {})} for output in outputs]
    assert cell["outputs"] == expected
    assert cell["outputs"][3]["data"] == png
    assert base64.b64decode(cell["outputs"][3]["data"]) == _png()
    assert cell["outputs"][0]["metadata"] == {}


async def test_outputs_replace_the_previous_run(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    await write_outputs(
        client,
        headers,
        notebook_id,
        cell_id,
        stdout="first",
        outputs=[{"mime_type": "text/plain", "data": "1"}],
    )
    await write_outputs(client, headers, notebook_id, cell_id, status="error", error="NameError: x")
    cell = (await get_notebook(client, headers, notebook_id))["cells"][0]
    assert (cell["status"], cell["stdout"], cell["outputs"], cell["error"]) == (
        "error",
        "",
        [],
        "NameError: x",
    )
    assert await _runs(notebook_id, cell_id) == 1


@pytest.mark.parametrize("status", ["idle", "running", "success", "error", "blocked"])
async def test_outputs_accept_every_status(client: Any, status: str) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    await write_outputs(client, headers, notebook_id, cell_id, status=status)
    assert (await get_notebook(client, headers, notebook_id))["cells"][0]["status"] == status


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done"}, "status"),
        ({"status": None}, "status"),
        ({"stdout": "x"}, "status"),
        ({"status": "success", "stdout": 5}, "stdout"),
        ({"status": "success", "outputs": {"mime_type": "text/plain"}}, "outputs"),
        ({"status": "success", "outputs": [{"data": "x"}]}, "mime_type"),
        ({"status": "success", "outputs": [{"mime_type": "", "data": "x"}]}, "mime_type"),
        ({"status": "success", "error": 3}, "error"),
    ],
)
async def test_outputs_bad_body_is_400_naming_the_field(
    client: Any, body: dict[str, Any], field: str
) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs", json=body, headers=headers
    )
    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]
    assert await _runs(notebook_id) == 0


async def test_outputs_for_unknown_cell_is_404(client: Any) -> None:
    headers, notebook_id, _ = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/no-such-cell/outputs",
        json={"status": "success"},
        headers=headers,
    )
    assert response.status_code == 404
    assert "cell" in response.json()["detail"]
    assert await _runs(notebook_id) == 0


async def test_outputs_for_a_deleted_cell_is_404_and_leaves_no_row(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    await write_outputs(client, headers, notebook_id, cell_id, stdout="before")
    response = await client.delete(f"/notebooks/{notebook_id}/cells/{cell_id}", headers=headers)
    assert response.status_code == 200
    assert await _runs(notebook_id, cell_id) == 0
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs",
        json={"status": "success", "stdout": "late"},
        headers=headers,
    )
    assert response.status_code == 404
    assert await _runs(notebook_id) == 0


async def test_outputs_for_unknown_notebook_is_404(client: Any) -> None:
    headers, _, cell_id = await _setup(client)
    response = await client.put(
        f"/notebooks/not-a-notebook/cells/{cell_id}/outputs",
        json={"status": "success"},
        headers=headers,
    )
    assert response.status_code == 404


async def test_outputs_over_the_cell_limit_is_400(client: Any, settings: Any) -> None:
    assert settings.max_cell_outputs_bytes == 16 * MIB
    headers, notebook_id, cell_id = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs",
        json={
            "status": "success",
            "outputs": [{"mime_type": "text/plain", "data": "o" * (17 * MIB)}],
        },
        headers=headers,
    )
    assert_bad_field(response, "outputs")
    assert await _runs(notebook_id) == 0


async def test_outputs_of_a_few_megabytes_are_accepted(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    data = base64.b64encode(bytes(range(256)) * (6 * KIB)).decode()  # ~2 MiB of base64
    await write_outputs(
        client, headers, notebook_id, cell_id, outputs=[{"mime_type": "image/png", "data": data}]
    )
    cell = (await get_notebook(client, headers, notebook_id))["cells"][0]
    assert cell["outputs"][0]["data"] == data


# -- client input that must never be a 500 ------------------------------------------------


@pytest.mark.parametrize("route", ["insert", "update"])
async def test_nul_character_in_code_is_400(client: Any, route: str) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    code = "x = '\x00'"
    if route == "insert":
        response = await client.post(
            f"/notebooks/{notebook_id}/cells",
            json={"type": "python", "code": code},
            headers=headers,
        )
    else:
        response = await client.put(
            f"/notebooks/{notebook_id}/cells/{cell_id}", json={"code": code}, headers=headers
        )
    assert_bad_field(response, "code")
    notebook = await get_notebook(client, headers, notebook_id)
    assert (len(notebook["cells"]), notebook["revision"]) == (1, 0)


@pytest.mark.parametrize("field", ["stdout", "error"])
async def test_nul_character_in_run_state_is_not_a_500(client: Any, field: str) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs",
        json={"status": "error", field: "before\x00after"},
        headers=headers,
    )
    assert response.status_code in (200, 400), response.text
    cell = (await get_notebook(client, headers, notebook_id))["cells"][0]
    if response.status_code == 400:
        assert field in response.json()["detail"]
        assert cell["status"] == "idle"
    else:
        assert cell[field] == "before\x00after"


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", {"code": "a = 1"}),
        ("DELETE", "", None),
        ("POST", "/move", {"index": 0}),
        ("PUT", "/outputs", {"status": "success"}),
    ],
)
async def test_nul_character_in_cell_id_is_404(
    client: Any, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    headers, notebook_id, _ = await _setup(client)
    response = await client.request(
        method, f"/notebooks/{notebook_id}/cells/a%00b{suffix}", json=body, headers=headers
    )
    assert response.status_code == 404, response.text


async def test_deeply_nested_output_data_is_not_a_500(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    data = b"[" * 1000 + b"]" * 1000
    content = b'{"status": "success", "outputs": [{"mime_type": "application/json", "data": '
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs",
        content=content + data + b"}]}",
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code in (200, 400), response.text


# -- cells per notebook --------------------------------------------------------------------


async def test_at_most_2000_cells_per_notebook(client: Any, settings: Any) -> None:
    assert settings.max_cells_per_notebook == 2000
    headers, notebook_id, _ = await _setup(client)
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET cells = (SELECT jsonb_agg(jsonb_build_object("
            "'id', gen_random_uuid()::text, 'type', 'python', 'code', '', "
            "'reads', '[]'::jsonb, 'writes', '[]'::jsonb, 'metadata', '{}'::jsonb)) "
            "FROM generate_series(1, 2000)) WHERE id = $1",
            notebook_id,
        )
    summary = next(n for n in await list_notebooks(client, headers) if n["id"] == notebook_id)
    assert summary["cell_count"] == 2000
    # The setup's UPDATE counted as a change (the revision trigger): start from there.
    revision = summary["revision"]

    url = f"/notebooks/{notebook_id}/cells"
    response = await client.post(url, json={"type": "python", "code": "x = 1"}, headers=headers)
    assert_bad_field(response, "cells")
    response = await client.post(url, json={"type": "python", "index": 0}, headers=headers)
    assert_bad_field(response, "cells")
    row = await Notebook.select(Notebook.revision).where(Notebook.id == notebook_id).first()
    assert row is not None
    assert row["revision"] == revision

    # Room again after a deletion.
    notebook = await get_notebook(client, headers, notebook_id)
    assert len(notebook["cells"]) == 2000
    removed = notebook["cells"][0]["id"]
    response = await client.delete(f"{url}/{removed}", headers=headers)
    assert response.status_code == 200
    response = await client.post(url, json={"type": "python", "code": "x = 1"}, headers=headers)
    assert response.status_code == 201
    assert response.json()["revision"] == revision + 2
