"""SPEC §3 notebook-level routes over HTTP: list/provisioning, create, get (ETag), rename,
connection string, delete, graph, isolation between users, auth, query counts, revisions
and the request body limit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from cryptography.fernet import Fernet

from app.auth.tokens import TokenService
from app.database import QueryCounter, connection
from app.notebooks.demo import load_demo
from app.notebooks.tables import CellRun, Notebook
from app.users.tables import User
from tests.conftest import REPLICA_PAIR, TEST_ENV
from tests.helpers import auth_headers, new_user_headers, unique_email

MIB = 1024 * 1024
SUMMARY_KEYS = {"id", "name", "kind", "revision", "cell_count", "updated_at"}
NOTEBOOK_KEYS = {"id", "name", "kind", "db_conn_string", "revision", "created_at", "updated_at"}
NOTEBOOK_KEYS |= {"cells"}
CELL_KEYS = {"id", "type", "code", "reads", "writes", "metadata", "status", "stdout", "outputs"}
CELL_KEYS |= {"error"}


# -- helpers -------------------------------------------------------------------------------

_TOKENS = TokenService(secret_key=TEST_ENV["APP_SECRET_KEY"], lifetime_seconds=3600)


async def fresh_user_headers(client: Any) -> dict[str, str]:
    """A fresh user and a token for them, without two argon2 rounds per test.

    The row and token are what ``POST /auth/register`` + ``POST /auth/token`` produce
    (tests/api/test_auth.py covers those); ``client`` makes sure the app and database are up.
    Some tests below still go through ``new_user_headers`` so the real path is used too.
    """
    assert client is not None
    rows = await User.insert(User(email=unique_email("nb"))).returning(User.id)
    token, _ = _TOKENS.issue(str(rows[0]["id"]))
    return auth_headers(token)


async def create_notebook(client: Any, headers: dict[str, str], name: str | None = None) -> str:
    response = await client.post("/notebooks", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    notebook_id: str = response.json()["notebook_id"]
    return notebook_id


async def get_notebook(client: Any, headers: dict[str, str], notebook_id: str) -> dict[str, Any]:
    response = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_cell(
    client: Any,
    headers: dict[str, str],
    notebook_id: str,
    code: str = "",
    cell_type: str = "python",
    index: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": cell_type, "code": code}
    if index is not None:
        body["index"] = index
    response = await client.post(f"/notebooks/{notebook_id}/cells", json=body, headers=headers)
    assert response.status_code == 201, response.text
    cell: dict[str, Any] = response.json()["cell"]
    return cell


async def list_notebooks(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/notebooks", headers=headers)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"notebooks", "next_cursor"}
    assert response.json()["next_cursor"] is None  # without limit: every notebook, one answer
    notebooks: list[dict[str, Any]] = response.json()["notebooks"]
    return notebooks


async def write_outputs(
    client: Any, headers: dict[str, str], notebook_id: str, cell_id: str, **body: Any
) -> None:
    body.setdefault("status", "success")
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs", json=body, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


def assert_bad_field(response: Any, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert field in body["detail"], body
    assert body.get("field") == field, body


async def settle() -> None:
    """Let asyncpg's query logger callbacks (scheduled with call_soon) run."""
    for _ in range(3):
        await asyncio.sleep(0)


async def statements(client: Any, url: str, headers: dict[str, str]) -> int:
    """How many statements one GET costs this process.

    With a standby (--with-replica) the count is taken once it has replayed
    everything, with the token 0/0 that it has passed: so that it does not
    depend on how far replay got (a read may ask the standby first, or fall
    back to the primary), and the fewest of three, as its connections learn
    the types they decode.
    """
    if not REPLICA_PAIR:
        return await _statements(client, url, headers)
    await REPLICA_PAIR[0].caught_up()
    passed = {**headers, "Cellar-Consistency": "0/0"}
    return min([await _statements(client, url, passed) for _ in range(3)])


async def _statements(client: Any, url: str, headers: dict[str, str]) -> int:
    await settle()
    before = QueryCounter.total
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    await settle()
    return QueryCounter.total - before


async def raw_connection_column(notebook_id: str) -> str | None:
    row = await Notebook.select(Notebook.db_conn_string).where(Notebook.id == notebook_id).first()
    assert row is not None
    value: str | None = row["db_conn_string"]
    return value


# -- GET /notebooks ------------------------------------------------------------------------


async def test_first_list_provisions_one_blank_and_one_demo(client: Any) -> None:
    headers = await new_user_headers(client)
    notebooks = await list_notebooks(client, headers)
    assert sorted(n["kind"] for n in notebooks) == ["blank", "demo"]
    for summary in notebooks:
        assert set(summary) == SUMMARY_KEYS
        assert uuid.UUID(summary["id"])
        assert summary["revision"] == 0
        datetime.fromisoformat(summary["updated_at"])
    by_kind = {n["kind"]: n for n in notebooks}
    assert by_kind["blank"]["cell_count"] == 1
    assert by_kind["demo"]["cell_count"] == len(load_demo().cells)
    assert by_kind["demo"]["name"] == load_demo().name

    blank = await get_notebook(client, headers, by_kind["blank"]["id"])
    assert blank["kind"] == "blank"
    assert [(c["type"], c["code"], c["reads"], c["writes"]) for c in blank["cells"]] == [
        ("python", "", [], [])
    ]


async def test_second_list_creates_nothing_more(client: Any) -> None:
    headers = await fresh_user_headers(client)
    first = await list_notebooks(client, headers)
    second = await list_notebooks(client, headers)
    assert second == first
    assert len(second) == 2


async def test_concurrent_first_lists_provision_exactly_one_of_each(client: Any) -> None:
    headers = await fresh_user_headers(client)
    responses = await asyncio.gather(*(client.get("/notebooks", headers=headers) for _ in range(6)))
    for response in responses:
        assert response.status_code == 200, response.text
        assert sorted(n["kind"] for n in response.json()["notebooks"]) == ["blank", "demo"]
    rows = await Notebook.select(Notebook.kind).where(
        Notebook.id.is_in([n["id"] for n in responses[0].json()["notebooks"]])
    )
    assert len(rows) == 2
    final = await list_notebooks(client, headers)
    assert {n["id"] for n in final} == {n["id"] for n in responses[0].json()["notebooks"]}


async def test_demo_content(client: Any) -> None:
    headers = await fresh_user_headers(client)
    demo_id = next(n["id"] for n in await list_notebooks(client, headers) if n["kind"] == "demo")
    demo = await get_notebook(client, headers, demo_id)
    cells = demo["cells"]
    assert [(c["type"], c["code"]) for c in cells] == [(c.type, c.code) for c in load_demo().cells]
    by_code = {c["code"]: c for c in cells}
    assert by_code["x = 10"]["writes"] == ["x"]
    flow = next(c for c in cells if c["code"].startswith("y = x + 5"))
    assert (flow["reads"], flow["writes"]) == (["x"], ["y"])
    codes = "\n".join(c["code"] for c in cells)
    assert "pandas" in codes
    assert "matplotlib" in codes
    assert "plotly" in codes
    sql = [c for c in cells if c["type"] == "sql"]
    assert len(sql) == 1
    assert "{x}" in sql[0]["code"]
    assert sql[0]["reads"] == ["x"]
    assert sql[0]["writes"] == []
    for cell in cells:
        assert set(cell) == CELL_KEYS
        assert uuid.UUID(cell["id"])
        assert cell["status"] == "idle"
        assert cell["metadata"] == {}


async def test_each_user_gets_an_independent_demo(client: Any) -> None:
    alice, bob = await fresh_user_headers(client), await fresh_user_headers(client)
    alice_demo_id = next(
        n["id"] for n in await list_notebooks(client, alice) if n["kind"] == "demo"
    )
    bob_demo_id = next(n["id"] for n in await list_notebooks(client, bob) if n["kind"] == "demo")
    assert alice_demo_id != bob_demo_id
    alice_demo = await get_notebook(client, alice, alice_demo_id)
    bob_demo = await get_notebook(client, bob, bob_demo_id)
    assert {c["id"] for c in alice_demo["cells"]}.isdisjoint(c["id"] for c in bob_demo["cells"])

    x_cell = next(c for c in alice_demo["cells"] if c["code"] == "x = 10")
    response = await client.put(
        f"/notebooks/{alice_demo_id}/cells/{x_cell['id']}", json={"code": "x = 99"}, headers=alice
    )
    assert response.status_code == 200, response.text
    await write_outputs(client, alice, alice_demo_id, x_cell["id"], stdout="99")
    response = await client.put(
        f"/notebooks/{alice_demo_id}/name", json={"name": "Alice's demo"}, headers=alice
    )
    assert response.status_code == 200

    assert await get_notebook(client, bob, bob_demo_id) == bob_demo
    assert "x = 10" in [c["code"] for c in (await get_notebook(client, bob, bob_demo_id))["cells"]]
    new_user = await fresh_user_headers(client)
    fresh_id = next(n["id"] for n in await list_notebooks(client, new_user) if n["kind"] == "demo")
    fresh = await get_notebook(client, new_user, fresh_id)
    assert "x = 10" in [c["code"] for c in fresh["cells"]]
    assert fresh["name"] == load_demo().name


async def test_list_is_newest_first_and_a_rename_moves_to_the_top(client: Any) -> None:
    headers = await fresh_user_headers(client)
    await list_notebooks(client, headers)
    older = await create_notebook(client, headers, "older")
    newer = await create_notebook(client, headers, "newer")
    notebooks = await list_notebooks(client, headers)
    assert [n["id"] for n in notebooks[:2]] == [newer, older]
    stamps = [datetime.fromisoformat(n["updated_at"]) for n in notebooks]
    assert stamps == sorted(stamps, reverse=True)

    response = await client.put(f"/notebooks/{older}/name", json={"name": "o"}, headers=headers)
    assert response.status_code == 200
    notebooks = await list_notebooks(client, headers)
    assert [n["id"] for n in notebooks[:2]] == [older, newer]
    assert notebooks[0]["name"] == "o"
    assert notebooks[0]["revision"] == 1
    assert len(notebooks) == 4


async def test_list_cell_count_follows_inserts(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    await add_cell(client, headers, notebook_id, "a = 1")
    await add_cell(client, headers, notebook_id, "b = 2")
    summary = next(n for n in await list_notebooks(client, headers) if n["id"] == notebook_id)
    assert summary["cell_count"] == 3
    assert summary["revision"] == 2
    assert summary["kind"] == "user"


# -- POST /notebooks -----------------------------------------------------------------------


async def test_create_notebook(client: Any) -> None:
    headers = await fresh_user_headers(client)
    response = await client.post("/notebooks", json={"name": "Sales"}, headers=headers)
    assert response.status_code == 201
    assert set(response.json()) == {"notebook_id"}
    notebook_id = response.json()["notebook_id"]
    assert uuid.UUID(notebook_id)
    notebook = await get_notebook(client, headers, notebook_id)
    assert notebook["name"] == "Sales"
    assert notebook["kind"] == "user"
    assert notebook["revision"] == 0
    assert notebook["db_conn_string"] is None
    assert len(notebook["cells"]) == 1
    cell = notebook["cells"][0]
    assert (cell["type"], cell["code"], cell["reads"], cell["writes"]) == ("python", "", [], [])
    assert (cell["status"], cell["stdout"], cell["outputs"], cell["error"]) == (
        "idle",
        "",
        [],
        None,
    )


async def test_create_notebook_without_name(client: Any) -> None:
    headers = await fresh_user_headers(client)
    response = await client.post("/notebooks", json={}, headers=headers)
    assert response.status_code == 201, response.text
    notebook = await get_notebook(client, headers, response.json()["notebook_id"])
    assert notebook["name"] is None
    assert notebook["kind"] == "user"


async def test_create_notebook_name_of_255_characters_is_accepted(client: Any) -> None:
    headers = await fresh_user_headers(client)
    name = "é" * 255
    notebook_id = await create_notebook(client, headers, name)
    assert (await get_notebook(client, headers, notebook_id))["name"] == name


@pytest.mark.parametrize("name", ["n" * 256, 123, ["x"], {"a": 1}, True])
async def test_create_notebook_bad_name_is_400(client: Any, name: Any) -> None:
    headers = await fresh_user_headers(client)
    before = await list_notebooks(client, headers)
    response = await client.post("/notebooks", json={"name": name}, headers=headers)
    assert_bad_field(response, "name")
    assert await list_notebooks(client, headers) == before


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'"name"'])
async def test_create_notebook_malformed_body_is_400(client: Any, content: bytes) -> None:
    headers = await fresh_user_headers(client)
    response = await client.post(
        "/notebooks",
        content=content,
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text


# -- GET /notebooks/{id} -------------------------------------------------------------------


async def test_get_notebook_full_shape_and_etag(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "shape")
    response = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == NOTEBOOK_KEYS
    assert body["id"] == notebook_id
    assert set(body["cells"][0]) == CELL_KEYS
    assert response.headers["etag"] == '"0"'
    created = datetime.fromisoformat(body["created_at"])
    updated = datetime.fromisoformat(body["updated_at"])
    assert created <= updated


async def test_if_none_match(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    url = f"/notebooks/{notebook_id}"

    response = await client.get(url, headers={**headers, "If-None-Match": '"0"'})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"0"'

    rename = await client.put(f"{url}/name", json={"name": "changed"}, headers=headers)
    assert rename.json()["revision"] == 1

    response = await client.get(url, headers={**headers, "If-None-Match": '"0"'})
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json()["name"] == "changed"

    response = await client.get(url, headers={**headers, "If-None-Match": '"7", "1"'})
    assert response.status_code == 304
    response = await client.get(url, headers={**headers, "If-None-Match": 'W/"1"'})
    assert response.status_code == 304


async def test_get_unknown_notebook_is_404(client: Any) -> None:
    headers = await fresh_user_headers(client)
    for notebook_id in (str(uuid.uuid4()), "not-a-uuid", "demo-user_nobody"):
        response = await client.get(f"/notebooks/{notebook_id}", headers=headers)
        assert response.status_code == 404, response.text
        assert "detail" in response.json()
        response = await client.get(
            f"/notebooks/{notebook_id}", headers={**headers, "If-None-Match": '"0"'}
        )
        assert response.status_code == 404


# -- PUT /name and PUT /db -----------------------------------------------------------------


async def test_rename(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "before")
    url = f"/notebooks/{notebook_id}/name"
    response = await client.put(url, json={"name": "after"}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "revision": 1}
    notebook = await get_notebook(client, headers, notebook_id)
    assert (notebook["name"], notebook["revision"]) == ("after", 1)

    response = await client.put(
        url, json={"name": "again", "expected_revision": 1}, headers=headers
    )
    assert response.json() == {"status": "ok", "revision": 2}
    response = await client.put(url, json={"name": None}, headers=headers)
    assert response.json() == {"status": "ok", "revision": 3}
    assert (await get_notebook(client, headers, notebook_id))["name"] is None


async def test_rename_stale_expected_revision_is_409_and_changes_nothing(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "v0")
    url = f"/notebooks/{notebook_id}/name"
    assert (await client.put(url, json={"name": "v1"}, headers=headers)).status_code == 200
    assert (await client.put(url, json={"name": "v2"}, headers=headers)).status_code == 200

    response = await client.put(url, json={"name": "lost", "expected_revision": 1}, headers=headers)
    assert response.status_code == 409
    body = response.json()
    assert body["revision"] == 2
    assert body["detail"]
    notebook = await get_notebook(client, headers, notebook_id)
    assert (notebook["name"], notebook["revision"]) == ("v2", 2)


@pytest.mark.parametrize(
    "body", [{"name": "n" * 256}, {"name": 5}, {}, {"name": "x", "expected_revision": -1}]
)
async def test_rename_bad_body_is_400(client: Any, body: dict[str, Any]) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "kept")
    response = await client.put(f"/notebooks/{notebook_id}/name", json=body, headers=headers)
    assert response.status_code == 400, response.text
    field = "expected_revision" if "expected_revision" in body else "name"
    assert field in response.json()["detail"]
    notebook = await get_notebook(client, headers, notebook_id)
    assert (notebook["name"], notebook["revision"]) == ("kept", 0)


async def test_if_match_on_rename(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "v0")
    url = f"/notebooks/{notebook_id}/name"

    response = await client.put(url, json={"name": "v1"}, headers={**headers, "If-Match": '"0"'})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "revision": 1}

    response = await client.put(url, json={"name": "v2"}, headers={**headers, "If-Match": '"0"'})
    assert response.status_code == 412
    assert response.json()["revision"] == 1

    for malformed in ("0", "abc", '"x"', '"-1"'):
        response = await client.put(
            url, json={"name": "v2"}, headers={**headers, "If-Match": malformed}
        )
        assert response.status_code == 400, (malformed, response.text)
        assert "If-Match" in response.json()["detail"]

    notebook = await get_notebook(client, headers, notebook_id)
    assert (notebook["name"], notebook["revision"]) == ("v1", 1)

    response = await client.put(url, json={"name": "v2"}, headers={**headers, "If-Match": "*"})
    assert response.json() == {"status": "ok", "revision": 2}


async def test_if_match_on_db_and_delete(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    url = f"/notebooks/{notebook_id}"
    stale = {**headers, "If-Match": '"3"'}
    response = await client.put(
        f"{url}/db", json={"connection_string": "postgresql://h/db"}, headers=stale
    )
    assert response.status_code == 412
    assert response.json()["revision"] == 0
    assert (await client.delete(url, headers=stale)).status_code == 412
    notebook = await get_notebook(client, headers, notebook_id)
    assert (notebook["db_conn_string"], notebook["revision"]) == (None, 0)

    response = await client.put(
        f"{url}/db",
        json={"connection_string": "postgresql://h/db"},
        headers={**headers, "If-Match": '"0"'},
    )
    assert response.json() == {"status": "ok", "revision": 1}
    response = await client.delete(url, headers={**headers, "If-Match": '"1"'})
    assert response.status_code == 200
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_set_connection_is_masked_and_encrypted_at_rest(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    clear = "postgresql://dbuser_q7z:pa55w0rd_q7z@db.internal:5432/warehouse"
    response = await client.put(
        f"/notebooks/{notebook_id}/db", json={"connection_string": clear}, headers=headers
    )
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "revision": 1}

    response = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    assert (
        response.json()["db_conn_string"]
        == "postgresql://dbuser_q7z:***@db.internal:5432/warehouse"
    )
    assert "pa55w0rd_q7z" not in response.text

    stored = await raw_connection_column(notebook_id)
    assert stored is not None
    assert "pa55w0rd_q7z" not in stored
    assert "dbuser_q7z" not in stored
    assert "db.internal" not in stored
    fernet = Fernet(TEST_ENV["ENCRYPTION_KEY"].encode())
    assert fernet.decrypt(stored.encode()).decode() == clear

    # Not in the list either, nor in any answer to a mutation.
    listed = await client.get("/notebooks", headers=headers)
    assert "pa55w0rd_q7z" not in listed.text


async def test_set_connection_key_value_form(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    clear = "host=h port=5432 user=kvuser password='two words' dbname=d"
    response = await client.put(
        f"/notebooks/{notebook_id}/db", json={"connection_string": clear}, headers=headers
    )
    assert response.status_code == 200
    notebook = await get_notebook(client, headers, notebook_id)
    assert notebook["db_conn_string"] == "host=h port=5432 user=kvuser password=*** dbname=d"
    stored = await raw_connection_column(notebook_id)
    assert stored is not None
    assert "two words" not in stored
    assert "kvuser" not in stored


@pytest.mark.parametrize("cleared", [None, ""])
async def test_set_connection_null_or_empty_clears_it(client: Any, cleared: str | None) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    url = f"/notebooks/{notebook_id}/db"
    set_response = await client.put(
        url, json={"connection_string": "postgresql://u:p@h/db"}, headers=headers
    )
    assert set_response.status_code == 200
    assert await raw_connection_column(notebook_id) is not None

    response = await client.put(url, json={"connection_string": cleared}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "revision": 2}
    assert (await get_notebook(client, headers, notebook_id))["db_conn_string"] is None
    assert await raw_connection_column(notebook_id) is None


async def test_set_connection_stale_expected_revision_is_409(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    url = f"/notebooks/{notebook_id}/db"
    first = await client.put(
        url, json={"connection_string": "postgresql://u:a@h1/db"}, headers=headers
    )
    assert first.json()["revision"] == 1
    response = await client.put(
        url,
        json={"connection_string": "postgresql://u:b@h2/db", "expected_revision": 0},
        headers=headers,
    )
    assert response.status_code == 409
    assert response.json()["revision"] == 1
    notebook = await get_notebook(client, headers, notebook_id)
    assert notebook["db_conn_string"] == "postgresql://u:***@h1/db"
    assert notebook["revision"] == 1


@pytest.mark.parametrize("body", [{"connection_string": 42}, {"connection_string": "x" * 5000}])
async def test_set_connection_bad_body_is_400(client: Any, body: dict[str, Any]) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    response = await client.put(f"/notebooks/{notebook_id}/db", json=body, headers=headers)
    assert_bad_field(response, "connection_string")
    assert (await get_notebook(client, headers, notebook_id))["revision"] == 0


async def test_set_connection_missing_field_is_400_naming_it(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    response = await client.put(f"/notebooks/{notebook_id}/db", json={}, headers=headers)
    assert response.status_code == 400
    assert "connection_string" in response.json()["detail"]
    assert (await get_notebook(client, headers, notebook_id))["revision"] == 0


@pytest.mark.parametrize(("route", "field"), [("db", "connection_string"), ("name", "name")])
async def test_missing_required_field_is_reported_in_field(
    client: Any, route: str, field: str
) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    response = await client.put(f"/notebooks/{notebook_id}/{route}", json={}, headers=headers)
    assert response.status_code == 400
    assert response.json()["field"] == field


# -- client input that must never be a 500 ------------------------------------------------


@pytest.mark.parametrize("route", ["create", "rename"])
async def test_nul_character_in_name_is_400(client: Any, route: str) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "kept")
    body = {"name": "a\x00b"}
    if route == "create":
        response = await client.post("/notebooks", json=body, headers=headers)
    else:
        response = await client.put(f"/notebooks/{notebook_id}/name", json=body, headers=headers)
    assert_bad_field(response, "name")
    notebook = await get_notebook(client, headers, notebook_id)
    assert (notebook["name"], notebook["revision"]) == ("kept", 0)


async def test_nul_character_in_notebook_id_is_404(client: Any) -> None:
    headers = await fresh_user_headers(client)
    response = await client.get("/notebooks/a%00b", headers=headers)
    assert response.status_code == 404


async def test_deeply_nested_body_is_400(client: Any) -> None:
    headers = await fresh_user_headers(client)
    before = await list_notebooks(client, headers)
    content = b'{"name": "deep", "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = await client.post(
        "/notebooks", content=content, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code in (201, 400), response.text
    if response.status_code == 400:
        assert await list_notebooks(client, headers) == before


async def test_if_none_match_star_is_304(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    response = await client.get(
        f"/notebooks/{notebook_id}", headers={**headers, "If-None-Match": "*"}
    )
    assert response.status_code == 304


# -- DELETE /notebooks/{id} ----------------------------------------------------------------


async def test_delete_notebook_moves_it_to_the_trash(client: Any) -> None:
    """SPEC §13: gone from GET and the list, kept (with its runs) until purged.

    The trash itself: tests/api/test_trash.py.
    """
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    cell = await add_cell(client, headers, notebook_id, "a = 1")
    await write_outputs(client, headers, notebook_id, cell["id"], stdout="out")
    assert await CellRun.count().where(CellRun.notebook == notebook_id) == 1

    response = await client.delete(f"/notebooks/{notebook_id}", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert (await client.get(f"/notebooks/{notebook_id}", headers=headers)).status_code == 404
    assert await CellRun.count().where(CellRun.notebook == notebook_id) == 1
    assert await Notebook.count().where(Notebook.id == notebook_id) == 1
    assert notebook_id not in {n["id"] for n in await list_notebooks(client, headers)}
    again = await client.delete(f"/notebooks/{notebook_id}", headers=headers)
    assert again.status_code == 404

    response = await client.delete(f"/notebooks/{notebook_id}?purge=true", headers=headers)
    assert response.status_code == 200
    assert await CellRun.count().where(CellRun.notebook == notebook_id) == 0
    assert await Notebook.count().where(Notebook.id == notebook_id) == 0


async def test_delete_notebook_with_expected_revision(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    await add_cell(client, headers, notebook_id, "a = 1")
    url = f"/notebooks/{notebook_id}"

    response = await client.delete(url, params={"expected_revision": 0}, headers=headers)
    assert response.status_code == 409
    assert response.json()["revision"] == 1
    assert (await get_notebook(client, headers, notebook_id))["revision"] == 1

    response = await client.delete(url, params={"expected_revision": "x"}, headers=headers)
    assert response.status_code == 400
    await get_notebook(client, headers, notebook_id)

    response = await client.delete(url, params={"expected_revision": 1}, headers=headers)
    assert response.status_code == 200
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_delete_unknown_notebook_is_404(client: Any) -> None:
    headers = await fresh_user_headers(client)
    response = await client.delete(f"/notebooks/{uuid.uuid4()}", headers=headers)
    assert response.status_code == 404


# -- GET /graph ----------------------------------------------------------------------------


async def _empty_notebook(client: Any, headers: dict[str, str]) -> str:
    """A notebook whose single blank cell is gone, so graphs hold only the test's cells."""
    notebook_id = await create_notebook(client, headers)
    blank = (await get_notebook(client, headers, notebook_id))["cells"][0]
    response = await client.delete(f"/notebooks/{notebook_id}/cells/{blank['id']}", headers=headers)
    assert response.status_code == 200
    return notebook_id


async def test_graph_edges_run_writer_to_reader_whatever_the_position(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await _empty_notebook(client, headers)
    reader = await add_cell(client, headers, notebook_id, "b = a + 1")
    writer = await add_cell(client, headers, notebook_id, "a = 1")
    unrelated = await add_cell(client, headers, notebook_id, "print('hi')")
    response = await client.get(f"/notebooks/{notebook_id}/graph", headers=headers)
    assert response.status_code == 200
    graph = response.json()
    assert set(graph) == {"order", "edges", "cycles", "conflicts"}
    assert graph["edges"] == [[writer["id"], reader["id"]]]
    assert graph["order"].index(writer["id"]) < graph["order"].index(reader["id"])
    assert sorted(graph["order"]) == sorted([reader["id"], writer["id"], unrelated["id"]])
    assert graph["cycles"] == []
    assert graph["conflicts"] == {}


async def test_graph_conflicts_and_cycles(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await _empty_notebook(client, headers)
    first = await add_cell(client, headers, notebook_id, "n = 1")
    second = await add_cell(client, headers, notebook_id, "n = 2")
    p = await add_cell(client, headers, notebook_id, "p = q")
    q = await add_cell(client, headers, notebook_id, "q = p")
    graph = (await client.get(f"/notebooks/{notebook_id}/graph", headers=headers)).json()
    assert graph["conflicts"] == {"n": [first["id"], second["id"]]}
    assert graph["cycles"] == [[p["id"], q["id"]]]
    assert sorted(graph["edges"]) == sorted([[p["id"], q["id"]], [q["id"], p["id"]]])
    assert sorted(graph["order"]) == sorted(c["id"] for c in (first, second, p, q))


async def test_graph_follows_edits(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await _empty_notebook(client, headers)
    writer = await add_cell(client, headers, notebook_id, "a = 1")
    reader = await add_cell(client, headers, notebook_id, "b = 2")
    url = f"/notebooks/{notebook_id}/graph"
    assert (await client.get(url, headers=headers)).json()["edges"] == []
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{reader['id']}", json={"code": "b = a"}, headers=headers
    )
    assert response.status_code == 200
    assert (await client.get(url, headers=headers)).json()["edges"] == [
        [writer["id"], reader["id"]]
    ]


async def test_graph_of_unknown_notebook_is_404(client: Any) -> None:
    headers = await fresh_user_headers(client)
    response = await client.get(f"/notebooks/{uuid.uuid4()}/graph", headers=headers)
    assert response.status_code == 404


# -- isolation and auth --------------------------------------------------------------------


def _routes(notebook_id: str, cell_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/notebooks/{notebook_id}"
    cell = f"{base}/cells/{cell_id}"
    return [
        ("GET", base, None),
        ("PUT", f"{base}/name", {"name": "stolen"}),
        ("PUT", f"{base}/db", {"connection_string": "postgresql://x:y@evil/db"}),
        ("DELETE", base, None),
        ("POST", f"{base}/cells", {"type": "python", "code": "evil = 1"}),
        ("PUT", cell, {"code": "evil = 1"}),
        ("DELETE", cell, None),
        ("POST", f"{cell}/move", {"index": 0}),
        ("PUT", f"{cell}/outputs", {"status": "error", "stdout": "evil"}),
        ("GET", f"{base}/graph", None),
    ]


async def test_another_users_notebook_is_404_on_every_route(client: Any) -> None:
    owner, intruder = await new_user_headers(client), await new_user_headers(client)
    notebook_id = await create_notebook(client, owner, "private")
    first = (await get_notebook(client, owner, notebook_id))["cells"][0]
    await add_cell(client, owner, notebook_id, "a = 1")
    await write_outputs(client, owner, notebook_id, first["id"], stdout="mine")
    set_db = await client.put(
        f"/notebooks/{notebook_id}/db",
        json={"connection_string": "postgresql://o:secret@h/db"},
        headers=owner,
    )
    assert set_db.status_code == 200
    before = await get_notebook(client, owner, notebook_id)

    missing_id = str(uuid.uuid4())
    theirs = _routes(notebook_id, first["id"])
    missing = _routes(missing_id, first["id"])
    for (method, url, body), (_, missing_url, _) in zip(theirs, missing, strict=True):
        response = await client.request(method, url, json=body, headers=intruder)
        expected = await client.request(method, missing_url, json=body, headers=intruder)
        assert response.status_code == 404, (method, url, response.text)
        assert expected.status_code == 404, (method, missing_url, expected.text)
        assert response.json() == expected.json(), (method, url)
    conditional = await client.get(
        f"/notebooks/{notebook_id}", headers={**intruder, "If-None-Match": '"1"'}
    )
    assert conditional.status_code == 404

    assert await get_notebook(client, owner, notebook_id) == before
    intruder_ids = {n["id"] for n in await list_notebooks(client, intruder)}
    assert notebook_id not in intruder_ids
    owner_ids = {n["id"] for n in await list_notebooks(client, owner)}
    assert intruder_ids.isdisjoint(owner_ids)


@pytest.mark.parametrize("token", [None, "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer "])
async def test_every_notebook_route_needs_a_token(client: Any, token: str | None) -> None:
    owner = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, owner, "guarded")
    cell_id = (await get_notebook(client, owner, notebook_id))["cells"][0]["id"]
    headers = {} if token is None else {"Authorization": token}
    routes = [
        ("GET", "/notebooks", None),
        ("POST", "/notebooks", {"name": "x"}),
        *_routes(notebook_id, cell_id),
    ]
    for method, url, body in routes:
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code == 401, (method, url, response.text)
    notebook = await get_notebook(client, owner, notebook_id)
    assert (notebook["name"], notebook["revision"], len(notebook["cells"])) == ("guarded", 0, 1)


# -- query counts (no N+1) -----------------------------------------------------------------

# Measured: both GET /notebooks and GET /notebooks/{id} cost 4 statements: the token's user
# lookup, the one list (or notebook + run state) query, and asyncpg's reset query
# ("SELECT pg_advisory_unlock_all(); CLOSE ALL; ...") when each of the two borrowed
# connections goes back to the pool.  Nothing is per notebook or per cell.
MAX_STATEMENTS = 4


async def test_list_costs_the_same_statements_for_2_and_40_notebooks(client: Any) -> None:
    headers = await fresh_user_headers(client)
    assert len(await list_notebooks(client, headers)) == 2
    small = await statements(client, "/notebooks", headers)
    for index in range(38):
        await create_notebook(client, headers, f"nb {index}")
    assert len(await list_notebooks(client, headers)) == 40
    large = await statements(client, "/notebooks", headers)
    assert small == large
    assert 1 <= large <= MAX_STATEMENTS


async def test_get_costs_the_same_statements_for_1_and_60_cells(client: Any) -> None:
    headers = await fresh_user_headers(client)
    small_id = await create_notebook(client, headers)
    small = await statements(client, f"/notebooks/{small_id}", headers)

    large_id = await create_notebook(client, headers)
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET cells = (SELECT jsonb_agg(jsonb_build_object("
            "'id', gen_random_uuid()::text, 'type', 'python', 'code', 'v' || i || ' = ' || i, "
            "'reads', '[]'::jsonb, 'writes', jsonb_build_array('v' || i), "
            "'metadata', '{}'::jsonb) ORDER BY i) FROM generate_series(1, 60) AS i) "
            "WHERE id = $1",
            large_id,
        )
    cells = (await get_notebook(client, headers, large_id))["cells"]
    assert len(cells) == 60
    for cell in cells[::6]:
        await write_outputs(
            client,
            headers,
            large_id,
            cell["id"],
            stdout="printed",
            outputs=[{"mime_type": "text/plain", "data": cell["code"]}],
        )
    with_outputs = [
        c for c in (await get_notebook(client, headers, large_id))["cells"] if c["outputs"]
    ]
    assert len(with_outputs) == 10
    large = await statements(client, f"/notebooks/{large_id}", headers)
    assert small == large
    assert 1 <= large <= MAX_STATEMENTS


# -- revision rules ------------------------------------------------------------------------


async def test_every_mutation_raises_revision_by_exactly_one(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    base = f"/notebooks/{notebook_id}"
    first_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]

    revisions = []
    response = await client.put(f"{base}/name", json={"name": "r"}, headers=headers)
    revisions.append(response.json()["revision"])
    response = await client.put(
        f"{base}/db", json={"connection_string": "postgresql://h/db"}, headers=headers
    )
    revisions.append(response.json()["revision"])
    response = await client.post(
        f"{base}/cells", json={"type": "python", "code": "a = 1"}, headers=headers
    )
    assert response.status_code == 201
    revisions.append(response.json()["revision"])
    new_id = response.json()["cell"]["id"]
    response = await client.put(f"{base}/cells/{new_id}", json={"code": "a = 2"}, headers=headers)
    revisions.append(response.json()["revision"])
    response = await client.post(f"{base}/cells/{new_id}/move", json={"index": 0}, headers=headers)
    revisions.append(response.json()["revision"])
    response = await client.delete(f"{base}/cells/{first_id}", headers=headers)
    revisions.append(response.json()["revision"])

    assert revisions == [1, 2, 3, 4, 5, 6]
    notebook = await get_notebook(client, headers, notebook_id)
    assert notebook["revision"] == 6
    assert [c["code"] for c in notebook["cells"]] == ["a = 2"]


async def test_failed_mutations_do_not_raise_revision(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    base = f"/notebooks/{notebook_id}"
    failures = [
        await client.put(f"{base}/name", json={"name": "x" * 300}, headers=headers),
        await client.put(
            f"{base}/name", json={"name": "x", "expected_revision": 9}, headers=headers
        ),
        await client.post(f"{base}/cells", json={"type": "python", "index": 5}, headers=headers),
        await client.put(f"{base}/cells/nope", json={"code": "a"}, headers=headers),
        await client.delete(f"{base}/cells/nope", headers=headers),
        await client.post(f"{base}/cells/nope/move", json={"index": 0}, headers=headers),
    ]
    assert [r.status_code for r in failures] == [400, 409, 400, 404, 404, 404]
    assert (await get_notebook(client, headers, notebook_id))["revision"] == 0


async def test_outputs_change_neither_revision_nor_updated_at(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    cell = await add_cell(client, headers, notebook_id, "a = 1")
    before = await get_notebook(client, headers, notebook_id)
    summary_before = next(
        n for n in await list_notebooks(client, headers) if n["id"] == notebook_id
    )

    await write_outputs(client, headers, notebook_id, cell["id"], status="running")
    await write_outputs(
        client,
        headers,
        notebook_id,
        cell["id"],
        stdout="1\n",
        outputs=[{"mime_type": "text/plain", "data": "1"}],
    )
    after = await get_notebook(client, headers, notebook_id)
    assert after["revision"] == before["revision"] == 1
    assert after["updated_at"] == before["updated_at"]
    assert after["cells"][1]["stdout"] == "1\n"
    summary_after = next(n for n in await list_notebooks(client, headers) if n["id"] == notebook_id)
    assert summary_after == summary_before


# -- limits --------------------------------------------------------------------------------


async def test_body_over_the_request_limit_is_413(client: Any, settings: Any) -> None:
    assert settings.max_request_body_bytes == 32 * MIB
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    cell_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    content = b'{"status": "success", "stdout": "' + b"a" * (33 * MIB) + b'"}'
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs",
        content=content,
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 413, response.text[:500]
    assert await CellRun.count().where(CellRun.notebook == notebook_id) == 0
    cell = (await get_notebook(client, headers, notebook_id))["cells"][0]
    assert (cell["status"], cell["stdout"]) == ("idle", "")


async def test_create_notebook_without_a_body(client: Any) -> None:
    headers = await new_user_headers(client)
    response = await client.post("/notebooks", headers=headers)
    assert response.status_code == 201, response.text
    notebook = await client.get(f"/notebooks/{response.json()['notebook_id']}", headers=headers)
    assert notebook.json()["name"] is None
    assert len(notebook.json()["cells"]) == 1
