"""SPEC §12 over HTTP: .ipynb in (``POST /notebooks/import``) and out (``GET …/ipynb``).

Every corpus notebook makes the whole trip through the real app and
PostgreSQL: import, ``GET /notebooks/{id}`` in §3's shape (the same cells and
run state the pure import made, nothing lost in storage), export, and the
export equal to the input after nbformat's own read.  Then what storage adds:
outputs the engine writes later replace the file's (export derives them),
a code edit leaves the outputs' row alone (§9), notebooks made in the app
export as valid 4.5 and come back; and the refusals: 400 naming the place,
413 naming the limit, 415 for other bodies.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import unquote

import msgspec
import nbformat
import pytest

from app.database import connection
from app.ipynb.convert import import_ipynb
from app.notebooks.schemas import Output
from tests import ipynb_corpus as corpus
from tests.api.test_notebooks import (
    add_cell,
    create_notebook,
    fresh_user_headers,
    get_notebook,
    write_outputs,
)
from tests.ipynb_corpus import as_read, runs_of, without_ids

IPYNB = "application/x-ipynb+json"
MIB = 1024 * 1024
NOTEBOOK_KEYS = {
    "id",
    "name",
    "kind",
    "db_conn_string",
    "revision",
    "created_at",
    "updated_at",
    "cells",
}
CELL_KEYS = {
    "id",
    "type",
    "code",
    "reads",
    "writes",
    "metadata",
    "status",
    "stdout",
    "outputs",
    "error",
}


@pytest.fixture(scope="module")
async def headers(client: Any) -> dict[str, str]:
    return await fresh_user_headers(client)


async def import_ipynb_http(
    client: Any,
    headers: dict[str, str],
    body: str | bytes,
    *,
    name: str | None = None,
    content_type: str | None = IPYNB,
) -> Any:
    request_headers = dict(headers)
    if content_type is not None:
        request_headers["Content-Type"] = content_type
    return await client.post(
        "/notebooks/import",
        content=body.encode() if isinstance(body, str) else body,
        params={} if name is None else {"name": name},
        headers=request_headers,
    )


async def imported(client: Any, headers: dict[str, str], body: str | bytes, **kw: Any) -> Any:
    answer = await import_ipynb_http(client, headers, body, **kw)
    assert answer.status_code == 201, answer.text[:500]
    result = answer.json()
    assert set(result) == {"notebook_id", "revision", "warnings"}
    assert result["revision"] == 0
    return result


async def export(client: Any, headers: dict[str, str], notebook_id: str) -> Any:
    answer = await client.get(f"/notebooks/{notebook_id}/ipynb", headers=headers)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-type"] == IPYNB
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    return answer


def assert_valid_nbformat(data: bytes) -> Any:
    notebook = nbformat.reads(data.decode(), as_version=nbformat.NO_CONVERT)
    nbformat.validate(notebook)  # raises when invalid
    assert notebook.nbformat == 4
    return notebook


def expected_cells(text: str) -> list[dict[str, Any]]:
    """The §3 cells the pure import makes of ``text`` (ids aside for minors < 5: random)."""
    pieces = import_ipynb(text)
    runs = runs_of(pieces)
    cells = []
    for cell in pieces.cells:
        run = runs.get(cell.id)
        shown = json.loads(msgspec.json.encode(cell))
        shown.update(status="idle", stdout="", outputs=[], error=None)
        if run is not None:
            shown.update(
                status=run.status,
                stdout=run.stdout,
                outputs=json.loads(run.outputs),
                error=run.error,
            )
        cells.append(shown)
    return cells


def comparable(cells: list[dict[str, Any]], keep_ids: bool) -> list[dict[str, Any]]:
    return [{k: v for k, v in cell.items() if keep_ids or k != "id"} for cell in cells]


async def assert_shown_as_imported(
    client: Any, headers: dict[str, str], notebook_id: str, text: str, name: str
) -> None:
    notebook = await get_notebook(client, headers, notebook_id)
    assert set(notebook) == NOTEBOOK_KEYS
    assert (notebook["kind"], notebook["revision"], notebook["name"]) == ("user", 0, name)
    assert all(set(cell) == CELL_KEYS for cell in notebook["cells"])
    for cell in notebook["cells"]:
        for output in cell["outputs"]:
            msgspec.convert(output, Output)  # {mime_type, data, metadata}
    keep_ids = as_read(text)["nbformat_minor"] >= 5 if json.loads(text)["nbformat"] == 4 else True
    assert comparable(notebook["cells"], keep_ids) == comparable(expected_cells(text), keep_ids)


def title_of(text: str) -> str:
    title = as_read(text)["metadata"].get("title")
    return title.strip() if isinstance(title, str) and title.strip() else "Untitled"


# -- the corpus round trip ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus.VALID))
async def test_valid_notebooks_round_trip_through_http(
    client: Any, headers: dict[str, str], name: str
) -> None:
    text = corpus.VALID[name]()
    result = await imported(client, headers, text)
    assert result["warnings"] == []
    await assert_shown_as_imported(client, headers, result["notebook_id"], text, title_of(text))
    exported = (await export(client, headers, result["notebook_id"])).content
    assert as_read(exported) == as_read(text)
    assert_valid_nbformat(exported)


@pytest.mark.parametrize("name", sorted(corpus.V3))
async def test_v3_notebooks_come_back_as_nbformats_upgrade(
    client: Any, headers: dict[str, str], name: str
) -> None:
    text = corpus.V3[name]()
    result = await imported(client, headers, text)
    assert result["warnings"][0] == "notebook: nbformat 3.0 upgraded to 4.5"
    notebook = await get_notebook(client, headers, result["notebook_id"])
    exported = (await export(client, headers, result["notebook_id"])).content
    assert without_ids(as_read(exported)) == without_ids(as_read(text, as_version=4))
    assert [cell["id"] for cell in as_read(exported)["cells"]] == [
        cell["id"] for cell in notebook["cells"]
    ]
    assert_valid_nbformat(exported)


@pytest.mark.parametrize("name", sorted(corpus.REPAIRED))
async def test_repaired_notebooks_list_their_repairs_and_export_valid(
    client: Any, headers: dict[str, str], name: str
) -> None:
    build, fragments = corpus.REPAIRED[name]
    result = await imported(client, headers, build())
    warnings = iter(result["warnings"])
    for fragment in fragments:  # each expected warning, in order
        assert any(fragment in warning for warning in warnings), (fragment, result["warnings"])
    exported = (await export(client, headers, result["notebook_id"])).content
    assert_valid_nbformat(exported)
    again = await imported(client, headers, exported)
    assert again["warnings"] == []
    assert as_read((await export(client, headers, again["notebook_id"])).content) == as_read(
        exported
    )


async def test_accept_header_on_get_answers_the_same_file(
    client: Any, headers: dict[str, str]
) -> None:
    result = await imported(client, headers, corpus.every_output_type())
    path = f"/notebooks/{result['notebook_id']}"
    by_route = await export(client, headers, result["notebook_id"])
    by_accept = await client.get(path, headers={**headers, "Accept": IPYNB})
    assert by_accept.status_code == 200, by_accept.text[:300]
    assert by_accept.headers["content-type"] == IPYNB
    assert by_accept.content == by_route.content
    assert by_accept.headers["content-disposition"] == by_route.headers["content-disposition"]
    assert "etag" not in by_accept.headers
    assert by_accept.headers["vary"] == "Accept"
    # JSON stays the default, and wins when the client ranks it higher.
    for accept in (None, "*/*", "application/json", f"application/json, {IPYNB};q=0.5"):
        extra = {} if accept is None else {"Accept": accept}
        answer = await client.get(path, headers={**headers, **extra})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json"), accept
        assert answer.headers["vary"] == "Accept"
        assert answer.json()["id"] == result["notebook_id"]
    preferred = await client.get(path, headers={**headers, "Accept": f"{IPYNB}, */*;q=0.1"})
    assert preferred.headers["content-type"] == IPYNB


def disposition_name(header: str) -> tuple[str, str | None]:
    """(the ASCII ``filename``, the decoded ``filename*`` or None)."""
    plain = re.search(r'filename="([^"]*)"', header)
    extended = re.search(r"filename\*=UTF-8''([^;]+)", header)
    assert plain is not None, header
    return plain.group(1), None if extended is None else unquote(extended.group(1))


@pytest.mark.parametrize(
    ("name", "ascii_name", "utf8_name"),
    [
        ("Sales 2024", "Sales 2024.ipynb", None),
        ('He said "hi"', "He said _hi_.ipynb", None),
        ("a/b\\c", "a_b_c.ipynb", None),
        ("Ünïcödé ✓ مرحبا", "_n_c_d_ _ _____.ipynb", "Ünïcödé ✓ مرحبا.ipynb"),
        ("50%; x", "50__ x.ipynb", "50%; x.ipynb"),
        ("  ../..  ", "_.ipynb", None),
    ],
)
async def test_download_file_names_are_safe(
    client: Any, headers: dict[str, str], name: str, ascii_name: str, utf8_name: str | None
) -> None:
    result = await imported(client, headers, corpus.empty(), name=name)
    header = (await export(client, headers, result["notebook_id"])).headers["content-disposition"]
    assert header.isascii()
    assert disposition_name(header) == (ascii_name, utf8_name)


async def test_the_name_comes_from_the_query_then_the_title_then_untitled(
    client: Any, headers: dict[str, str]
) -> None:
    titled = corpus.cellar_export()  # metadata.title "Made in Cellar"
    by_query = await imported(client, headers, titled, name="Mine")
    by_title = await imported(client, headers, titled)
    untitled = await imported(client, headers, corpus.empty())
    names = [
        (await get_notebook(client, headers, r["notebook_id"]))["name"]
        for r in (by_query, by_title, untitled)
    ]
    assert names == ["Mine", "Made in Cellar", "Untitled"]
    header = (await export(client, headers, untitled["notebook_id"])).headers
    assert header["content-disposition"] == 'attachment; filename="Untitled.ipynb"'


async def test_a_title_over_255_characters_is_cut_and_said(
    client: Any, headers: dict[str, str]
) -> None:
    document = json.loads(corpus.empty())
    document["metadata"]["title"] = "t" * 300 + "\x00"
    result = await imported(client, headers, json.dumps(document))
    assert result["warnings"] == [
        "metadata.title: longer than 255 characters; the notebook's name is its beginning"
    ]
    notebook = await get_notebook(client, headers, result["notebook_id"])
    assert notebook["name"] == "t" * 255
    # The title itself is kept in the metadata, whole.
    exported = as_read((await export(client, headers, result["notebook_id"])).content)
    assert exported["metadata"]["title"] == "t" * 300 + "\x00"


# -- what storage must keep straight --------------------------------------------------------------


async def record_of(notebook_id: str, cell_id: str) -> tuple[str | None, int]:
    """The cell's stored .ipynb record and its row's xmin (which changes when rewritten)."""
    async with connection() as conn:
        row = await conn.fetchrow(
            "SELECT ipynb, xmin::text::bigint FROM cell_runs WHERE notebook_id = $1 "
            "AND cell_id = $2",
            notebook_id,
            cell_id,
        )
    assert row is not None
    return row[0], row[1]


async def test_outputs_written_after_the_import_are_what_the_export_holds(
    client: Any, headers: dict[str, str]
) -> None:
    text = corpus.every_output_type()
    result = await imported(client, headers, text)
    notebook_id = result["notebook_id"]
    cells = (await get_notebook(client, headers, notebook_id))["cells"]
    target = cells[1]["id"]
    assert (await record_of(notebook_id, target))[0] is not None
    outputs = [{"mime_type": "image/png", "data": corpus.png(3), "metadata": {"width": 8}}]
    await write_outputs(client, headers, notebook_id, target, stdout="again\n", outputs=outputs)
    assert (await record_of(notebook_id, target))[0] is None  # the engine's write dropped it
    exported = as_read((await export(client, headers, notebook_id)).content)
    assert exported["cells"][1]["execution_count"] is None
    assert exported["cells"][1]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "again\n"},
        {
            "output_type": "display_data",
            "data": {"image/png": corpus.png(3)},
            "metadata": {"width": 8},
        },
    ]
    # Every other cell comes back as it came in.
    original = as_read(text)["cells"]
    assert exported["cells"][:1] + exported["cells"][2:] == original[:1] + original[2:]
    assert_valid_nbformat(json.dumps(exported).encode())


async def test_a_code_edit_leaves_the_outputs_row_alone(
    client: Any, headers: dict[str, str]
) -> None:
    """§9: editing code never rewrites outputs; the file's outputs stay, as in Jupyter."""
    text = corpus.four_mb_images(20)
    result = await imported(client, headers, text)
    notebook_id = result["notebook_id"]
    cell_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    before = await record_of(notebook_id, cell_id)
    edited = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}", json={"code": "plot(2)"}, headers=headers
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["cell"]["status"] == "success"  # the edit answers the kept run state
    assert await record_of(notebook_id, cell_id) == before  # same record, same row version
    exported = as_read((await export(client, headers, notebook_id)).content)
    assert exported["cells"][0]["source"] == "plot(2)"
    assert exported["cells"][0]["outputs"] == as_read(text)["cells"][0]["outputs"]


async def test_an_app_made_notebook_exports_as_valid_45_and_comes_back(
    client: Any, headers: dict[str, str]
) -> None:
    notebook_id = await create_notebook(client, headers, name="Made here ✓")
    first = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    await client.put(
        f"/notebooks/{notebook_id}/cells/{first}", json={"code": "x = 10"}, headers=headers
    )
    await add_cell(client, headers, notebook_id, "SELECT {x} AS y", "sql")
    await add_cell(client, headers, notebook_id, "print(x)", "python")
    outputs = [{"mime_type": "text/plain", "data": "10", "metadata": {}}]
    await write_outputs(client, headers, notebook_id, first, outputs=outputs)
    original = await get_notebook(client, headers, notebook_id)

    exported = (await export(client, headers, notebook_id)).content
    document = assert_valid_nbformat(exported)
    assert (document.nbformat, document.nbformat_minor) == (4, 5)
    assert document.metadata.title == "Made here ✓"
    assert [c.metadata.get("cellar", {}).get("type") for c in document.cells] == [
        "python",
        "sql",
        "python",
    ]
    result = await imported(client, headers, exported)
    assert result["warnings"] == []
    again = await get_notebook(client, headers, result["notebook_id"])
    assert again["name"] == "Made here ✓"
    keys = ("id", "type", "code", "reads", "writes", "status", "stdout", "outputs", "error")
    assert [[c[k] for k in keys] for c in again["cells"]] == [
        [c[k] for k in keys] for c in original["cells"]
    ]


async def test_the_demo_notebook_exports(client: Any) -> None:
    headers = await fresh_user_headers(client)
    listed = await client.get("/notebooks", headers=headers)
    demo = next(n for n in listed.json()["notebooks"] if n["kind"] == "demo")
    exported = (await export(client, headers, demo["id"])).content
    document = assert_valid_nbformat(exported)
    shown = await get_notebook(client, headers, demo["id"])
    assert [c.source for c in document.cells] == [c["code"] for c in shown["cells"]]


async def test_another_users_notebook_is_not_found(client: Any, headers: dict[str, str]) -> None:
    result = await imported(client, headers, corpus.empty())
    other = await fresh_user_headers(client)
    for extra, path in (
        ({}, f"/notebooks/{result['notebook_id']}/ipynb"),
        ({"Accept": IPYNB}, f"/notebooks/{result['notebook_id']}"),
        ({}, "/notebooks/missing/ipynb"),
    ):
        answer = await client.get(path, headers={**other, **extra})
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["detail"] == "notebook not found"


async def test_imports_are_counted_in_the_metrics(client: Any, headers: dict[str, str]) -> None:
    def count(text: str, outcome: str) -> float:
        pattern = (
            rf'cellar_imports_total\{{outcome="{outcome}",source="ipynb"\}} ([0-9.e+]+)'
            rf'|cellar_imports_total\{{source="ipynb",outcome="{outcome}"\}} ([0-9.e+]+)'
        )
        found = re.search(pattern, text)
        return 0.0 if found is None else float(found.group(1) or found.group(2))

    before = (await client.get("/metrics")).text
    await imported(client, headers, corpus.empty())
    await import_ipynb_http(client, headers, b"not json")
    after = (await client.get("/metrics")).text
    assert count(after, "imported") == count(before, "imported") + 1
    assert count(after, "failed") == count(before, "failed") + 1


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus.BROKEN))
async def test_unreadable_documents_are_400_naming_the_place(
    client: Any, headers: dict[str, str], name: str
) -> None:
    body, expected = corpus.BROKEN[name]
    answer = await import_ipynb_http(client, headers, body)
    assert answer.status_code == 400, answer.text[:300]
    error = answer.json()
    assert error["detail"].startswith(expected), error
    assert error["detail"].startswith(error["field"] + ": ")
    assert len(error["detail"]) < 300


async def test_other_media_types_are_415(client: Any, headers: dict[str, str]) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        answer = await import_ipynb_http(client, headers, corpus.empty(), content_type=content_type)
        assert answer.status_code == 415, answer.text
        assert answer.json()["field"] == "Content-Type"
        assert content_type in answer.json()["detail"]
    for content_type in (None, "application/json", "application/json; charset=utf-8", IPYNB):
        answer = await import_ipynb_http(client, headers, corpus.empty(), content_type=content_type)
        assert answer.status_code == 201, (content_type, answer.text)


async def test_a_bad_name_is_400(client: Any, headers: dict[str, str]) -> None:
    for name in ("n" * 256, "a\x00b"):
        answer = await import_ipynb_http(client, headers, corpus.empty(), name=name)
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "name"


async def test_limits_are_413_naming_the_limit(client: Any, headers: dict[str, str]) -> None:
    """§3's limits (defaults): 2,000 cells, 256 KiB of code, 16 MiB of outputs, 32 MiB of body."""
    code = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}
    too_many = corpus._cells(*({**code, "id": f"c{i}", "source": ""} for i in range(2001)))
    long_code = corpus._cells(
        {**code, "id": "a", "source": ""}, {**code, "id": "b", "source": "x" * (256 * 1024 + 1)}
    )
    big_output = {"output_type": "stream", "name": "stdout", "text": "y" * (16 * MIB + 1)}
    big_outputs = corpus._cells({**code, "id": "a", "source": "", "outputs": [big_output]})
    too_big = b" " * (32 * MIB + 1) + corpus.empty().encode()
    cases = [
        (too_many, "cells", "2001 cells; a notebook holds at most 2000 (MAX_CELLS_PER_NOTEBOOK)"),
        (long_code, "cells[1].source", "MAX_CELL_CODE_BYTES"),
        (big_outputs, "cells[0].outputs", "MAX_CELL_OUTPUTS_BYTES"),
        (too_big, "body", "MAX_REQUEST_BODY_BYTES"),
    ]
    for body, field, limit in cases:
        answer = await import_ipynb_http(client, headers, body)
        assert answer.status_code == 413, (field, answer.text[:300])
        assert answer.json()["field"] == field
        assert limit in answer.json()["detail"], answer.json()
    # At the limits themselves, it imports.
    at_limit = corpus._cells(*({**code, "id": f"c{i}", "source": ""} for i in range(2000)))
    await imported(client, headers, at_limit)


# -- the export cache -----------------------------------------------------------------------------


async def test_a_kept_export_is_served_only_while_the_notebook_is_unchanged(
    client: Any, headers: dict[str, str]
) -> None:
    """Every change the export is made of shows at once: name, code, cells, outputs."""
    result = await imported(client, headers, corpus.every_output_type(), name="Kept")
    notebook_id = result["notebook_id"]
    path = f"/notebooks/{notebook_id}"
    cells = (await get_notebook(client, headers, notebook_id))["cells"]
    first = (await export(client, headers, notebook_id)).content
    assert (await export(client, headers, notebook_id)).content == first

    async def exported() -> Any:
        return as_read((await export(client, headers, notebook_id)).content)

    renamed = await client.put(f"{path}/name", json={"name": "Renamed"}, headers=headers)
    assert renamed.status_code == 200
    answer = await export(client, headers, notebook_id)
    assert answer.headers["content-disposition"] == 'attachment; filename="Renamed.ipynb"'
    edited = await client.put(
        f"{path}/cells/{cells[2]['id']}", json={"code": "z = 3"}, headers=headers
    )
    assert edited.status_code == 200
    assert (await exported())["cells"][2]["source"] == "z = 3"
    await write_outputs(client, headers, notebook_id, cells[3]["id"], stdout="new\n")
    assert (await exported())["cells"][3]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "new\n"}
    ]
    await write_outputs(client, headers, notebook_id, cells[3]["id"], stdout="newer\n")
    assert (await exported())["cells"][3]["outputs"][0]["text"] == "newer\n"
    deleted = await client.delete(f"{path}/cells/{cells[4]['id']}", headers=headers)
    assert deleted.status_code == 200
    assert [cell["id"] for cell in (await exported())["cells"]] == [
        cell["id"] for cell in cells if cell["id"] != cells[4]["id"]
    ]


async def test_the_export_stamp_changes_with_every_run_written(
    client: Any, headers: dict[str, str]
) -> None:
    """Two run states written in either order (or by two transactions whose clocks disagree)
    each give the notebook a stamp it never had."""
    from app.store.ipynb import export_stamp

    result = await imported(client, headers, corpus.every_output_type())
    notebook_id = result["notebook_id"]
    notebook = await get_notebook(client, headers, notebook_id)
    user_id = await _owner(notebook_id)
    seen = set()
    async with connection() as conn:
        seen.add(await export_stamp(conn, notebook_id, user_id))
    for index, cell in enumerate(notebook["cells"][1:4] * 2):
        await write_outputs(client, headers, notebook_id, cell["id"], stdout=f"{index}\n")
        async with connection() as conn:
            stamp = await export_stamp(conn, notebook_id, user_id)
        assert stamp not in seen
        seen.add(stamp)
    async with connection() as conn:
        assert await export_stamp(conn, notebook_id, uuid.uuid4()) is None  # not theirs


async def _owner(notebook_id: str) -> Any:
    async with connection() as conn:
        return await conn.fetchval("SELECT user_id FROM notebooks WHERE id = $1", notebook_id)


async def test_an_unchanged_notebook_is_exported_without_reading_it_again(
    client: Any, headers: dict[str, str], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.ipynb.services import IpynbService
    from app.store import ipynb as store

    result = await imported(client, headers, corpus.plots())
    notebook_id = result["notebook_id"]
    user_id = await _owner(notebook_id)
    service = IpynbService(settings)
    first = await service.export(user_id, notebook_id)

    async def unread(*_: Any) -> None:
        raise AssertionError("read again")

    monkeypatch.setattr(store, "export_row", unread)
    assert await service.export(user_id, notebook_id) == first  # from the cache
    renamed = await client.put(
        f"/notebooks/{notebook_id}/name", json={"name": "changed"}, headers=headers
    )
    assert renamed.status_code == 200
    with pytest.raises(AssertionError, match="read again"):
        await service.export(user_id, notebook_id)
    uncached = IpynbService(msgspec.structs.replace(settings, ipynb_export_cache_bytes=0))
    with pytest.raises(AssertionError, match="read again"):
        await uncached.export(user_id, notebook_id)
