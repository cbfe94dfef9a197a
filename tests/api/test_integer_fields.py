"""Every integer a client can send, on every route: never a 5xx (SPEC §3).

"Never 500 for anything a client can send": a revision of 2^63 once reached
PostgreSQL's ``bigint`` and came back as a 500.  The integer-carrying fields
are read from the app's own OpenAPI document (body properties, query and
path parameters typed ``integer``) plus the headers that carry revisions
(``If-Match``, ``If-None-Match``), so a route added later is driven here
without touching this file.  Hypothesis sends each of them huge, negative,
fractional, non-numeric and malformed values, on a fresh notebook each time
so that a value a lax parser accepts cannot spoil the next example.

Revisions have their own contract (SPEC §1: 64-bit, ≥ 0): outside
0…2^63-1 they are a 400 naming the field, in a body, in ``If-Match`` and in
``?expected_revision=``; at 2^63-1 they are an ordinary conflict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import new_user_headers
from tests.openapi import Operation, operations, types

if TYPE_CHECKING:
    from httpx import AsyncClient, Response

MAX_REVISION = 2**63 - 1
REVISION_HEADERS = ("If-Match", "If-None-Match")


@dataclass(frozen=True)
class Field:
    """One place of one route where a client puts an integer."""

    operation: Operation
    location: str  # "body", "query", "path" or "header"
    name: str

    @property
    def method(self) -> str:
        return self.operation.method

    def __str__(self) -> str:
        return f"{self.operation} {self.location}:{self.name}"


def integer_fields(document: dict[str, Any]) -> list[Field]:
    fields: list[Field] = []
    for operation in operations(document):
        for parameter in operation.parameters:
            carries = "integer" in types(parameter.get("schema", {}), document)
            if carries or parameter["name"] in REVISION_HEADERS:
                fields.append(Field(operation, parameter["in"], parameter["name"]))
        for name, schema in (operation.body_schema or {}).get("properties", {}).items():
            if "integer" in types(schema, document):
                fields.append(Field(operation, "body", name))
    return fields


# -- the values ------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text put into a body as it is (numbers Python cannot write, malformed ones)."""

    text: str


EDGES = [MAX_REVISION, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**100, -1]
RAW_NUMBERS = [
    "1e400",
    "-1e400",
    "1e19",
    "9223372036854775808.0",
    "0.5",
    "-0.0",
    "NaN",
    "Infinity",
    "1" * 400,
    "0x10",
]
bad_values = st.one_of(
    st.sampled_from(EDGES),
    st.integers(min_value=2**63),
    st.integers(max_value=-1),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda value: not value.is_integer()),
    st.sampled_from([Raw(text) for text in RAW_NUMBERS]),
    st.text(max_size=25),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)


def as_text(value: object) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def printable(text: str) -> str:
    """Header values travel as latin-1 without control characters."""
    return "".join(char for char in text if 32 <= ord(char) < 127)


# -- the app under test ------------------------------------------------------------


@pytest.fixture(scope="module")
async def document(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    schema: dict[str, Any] = response.json()
    return schema


@pytest.fixture(scope="module")
async def headers(client: AsyncClient) -> dict[str, str]:
    return await new_user_headers(client)


async def fresh_notebook(client: AsyncClient, headers: dict[str, str]) -> tuple[str, str, int]:
    """(notebook id, id of its one cell, revision)."""
    created = await client.post("/notebooks", json={"name": "integers"}, headers=headers)
    assert created.status_code == 201, created.text
    notebook_id: str = created.json()["notebook_id"]
    shown = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    return notebook_id, body["cells"][0]["id"], body["revision"]


# Routes that act on a notebook in the trash (SPEC §13): their notebook is trashed first,
# so that a field's value, not the notebook's place, decides the answer.
ON_TRASHED = {"/notebooks/{notebook_id}/restore"}
# Routes that act on a checkpoint or a version of a cell get a real one.
WITH_CHECKPOINT = "{checkpoint_id}"
CELL_RESTORE = "/notebooks/{notebook_id}/cells/{cell_id}/restore"


async def real_targets(
    client: AsyncClient, headers: dict[str, str], path: str, notebook_id: str, cell_id: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """(more path ids, body values) that make a request of ``path`` find what it names."""
    base = f"/notebooks/{notebook_id}"
    if WITH_CHECKPOINT in path:
        taken = await client.post(f"{base}/checkpoints", json={}, headers=headers)
        assert taken.status_code == 201, taken.text
        return {"checkpoint_id": taken.json()["id"]}, {}
    if path == CELL_RESTORE:
        edited = await client.put(
            f"{base}/cells/{cell_id}", json={"code": "a = 1"}, headers=headers
        )
        assert edited.status_code == 200, edited.text
        history = await client.get(f"{base}/cells/{cell_id}/history", headers=headers)
        return {}, {"seq": history.json()["versions"][0]["seq"]}
    return {}, {}


async def send(
    client: AsyncClient,
    headers: dict[str, str],
    document: dict[str, Any],
    field: Field,
    value: object,
    *,
    header_form: str = '"{}"',
) -> Response:
    """The route with a valid request except for ``field``, which carries ``value``."""
    notebook_id, cell_id, _ = await fresh_notebook(client, headers)
    if field.operation.path in ON_TRASHED:
        trashed = await client.delete(f"/notebooks/{notebook_id}", headers=headers)
        assert trashed.status_code == 200, trashed.text
    more, known = await real_targets(client, headers, field.operation.path, notebook_id, cell_id)
    ids = {"notebook_id": notebook_id, "cell_id": cell_id, **more}
    if field.location == "path":
        ids[field.name] = as_text(value)
    request = field.operation.request(document, ids, known)
    content = request.content
    params: dict[str, str] = {}
    request_headers = {**headers, **request.headers}
    if field.location == "body" and content is not None:
        body = json.loads(content)
        body[field.name] = "__VALUE__"
        rendered = value.text if isinstance(value, Raw) else json.dumps(value)
        content = json.dumps(body).replace('"__VALUE__"', rendered)
    elif field.location == "query":
        params[field.name] = as_text(value)
    elif field.location == "header":
        request_headers[field.name] = header_form.format(printable(as_text(value)))
    return await client.request(
        request.method, request.path, params=params, content=content, headers=request_headers
    )


def describe(field: Field, value: object, response: Response) -> str:
    return f"{field} = {value!r} -> {response.status_code} {response.text[:300]}"


# -- the tests ---------------------------------------------------------------------


async def test_the_integer_fields_are_found(document: dict[str, Any]) -> None:
    """The discovery sees the fields SPEC §3 names (so the property below drives them)."""
    found = {str(field) for field in integer_fields(document)}
    cell = "/notebooks/{notebook_id}/cells/{cell_id}"
    expected = {
        f"PUT {cell} body:expected_revision",
        f"PUT {cell} header:If-Match",
        f"DELETE {cell} query:expected_revision",
        f"POST {cell}/move body:index",
        "POST /notebooks/{notebook_id}/cells body:index",
        "DELETE /notebooks/{notebook_id} query:expected_revision",
        "PUT /notebooks/{notebook_id}/name body:expected_revision",
        "PUT /notebooks/{notebook_id}/db header:If-Match",
        "GET /notebooks/{notebook_id} header:If-None-Match",
        "GET /notebooks/search query:limit",
        "POST /notebooks/import body:nbformat",
        "POST /notebooks/import body:nbformat_minor",
    }
    assert expected <= found, sorted(expected - found)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_integer_value_gets_a_server_error(
    client: AsyncClient, headers: dict[str, str], document: dict[str, Any], data: st.DataObject
) -> None:
    fields = integer_fields(document)
    field = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(bad_values, label="value")
    header_form = data.draw(st.sampled_from(['"{}"', "{}", 'W/"{}"']), label="header form")
    response = await send(client, headers, document, field, value, header_form=header_form)
    assert response.status_code < 500, describe(field, value, response)


def revision_fields(document: dict[str, Any]) -> list[Field]:
    """Every place a mutation takes a revision: ``expected_revision`` and ``If-Match``."""
    return [
        field
        for field in integer_fields(document)
        if field.name in ("expected_revision", "If-Match") and field.method != "get"
    ]


async def test_revisions_beyond_int64_or_negative_are_400_naming_the_field(
    client: AsyncClient, headers: dict[str, str], document: dict[str, Any]
) -> None:
    fields = revision_fields(document)
    assert len(fields) >= 12, [str(field) for field in fields]
    wrong: list[str] = []
    for field in fields:
        for value in (2**63, 2**64, 10**30, -1):
            response = await send(client, headers, document, field, value)
            body = response.json()
            named = body.get("field") == field.name and field.name in body["detail"]
            if response.status_code != 400 or not named:
                wrong.append(describe(field, value, response))
    assert wrong == [], "\n".join(wrong)


async def test_the_largest_revision_is_an_ordinary_conflict(
    client: AsyncClient, headers: dict[str, str], document: dict[str, Any]
) -> None:
    """2^63-1 is a valid revision that is not the notebook's: 409 (body, query) or 412."""
    wrong: list[str] = []
    for field in revision_fields(document):
        response = await send(client, headers, document, field, MAX_REVISION)
        expected = 412 if field.location == "header" else 409
        if response.status_code != expected or not isinstance(response.json()["revision"], int):
            wrong.append(describe(field, MAX_REVISION, response))
    assert wrong == [], "\n".join(wrong)


async def test_a_nineteen_digit_if_match_names_its_revision(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    """Revisions up to 2^63-1 are addressable in If-Match, leading zeros included."""
    notebook_id, _, revision = await fresh_notebook(client, headers)
    matching = f'"{revision:019d}"'
    renamed = await client.put(
        f"/notebooks/{notebook_id}/name",
        json={"name": "nineteen digits"},
        headers={**headers, "If-Match": matching},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["revision"] == revision + 1
