"""The API explains itself (issue 16, item 4): the OpenAPI document, checked against the server.

The document must be valid OpenAPI (``openapi-spec-validator``), and it must
say what the server does: a route the bearer middleware guards (found by
calling every operation without a token) carries the bearer security
requirement and documents its 401, an open one carries none; the error
answers the routes really give validate against the body schemas the
document names (``jsonschema``); the limits the server enforces are stated;
every operation has a summary and a description; every request field is
described.  ``GET /`` points at the rest.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from app import __version__
from tests.helpers import auth_headers, new_user_headers

if TYPE_CHECKING:
    import httpx

METHODS = ("get", "put", "post", "delete", "patch")
OPEN_OPERATIONS = {"index", "health", "metrics", "register", "issueToken"}


@pytest.fixture(scope="module")
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def schema_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def assert_matches(document: dict[str, Any], reference: dict[str, Any], body: Any) -> None:
    """``body`` is valid against ``reference`` (a ``$ref`` into the document's components)."""
    validator = Draft202012Validator({**reference, "components": document["components"]})
    errors = [error.message for error in validator.iter_errors(body)]
    assert errors == [], (reference, body, errors)


def response_schema(operation: dict[str, Any], status: int) -> dict[str, Any]:
    assert str(status) in operation["responses"], (operation["operationId"], status)
    content = operation["responses"][str(status)]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def by_id(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for _, _, operation in operations(document):
        if operation["operationId"] == operation_id:
            return operation
    raise AssertionError(f"no operation {operation_id}")


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == __version__


async def test_security_is_stated_exactly_where_a_token_is_required(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    scheme = document["components"]["securitySchemes"]["BearerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    guarded: set[str] = set()
    for path, method, operation in operations(document):
        url = re.sub(r"\{[^}]+\}", "no-such-id", path)
        response = await client.request(method.upper(), url)
        if response.status_code == 401 and response.json()["detail"] == "missing bearer token":
            guarded.add(operation["operationId"])
            assert operation.get("security") == [{"BearerToken": []}], operation["operationId"]
            assert_matches(document, response_schema(operation, 401), response.json())
        else:
            assert "security" not in operation, operation["operationId"]
    every = {operation["operationId"] for _, _, operation in operations(document)}
    assert every - guarded == OPEN_OPERATIONS


async def test_real_error_answers_match_their_documented_bodies(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    headers = await new_user_headers(client)
    created = await client.post("/notebooks", json={"name": "errors"}, headers=headers)
    notebook = created.json()["notebook_id"]
    rename = by_id(document, "renameNotebook")

    cases: list[tuple[dict[str, Any], int, httpx.Response]] = [
        (
            rename,
            400,
            await client.put(
                f"/notebooks/{notebook}/name", json={"name": "x" * 256}, headers=headers
            ),
        ),
        (
            rename,
            404,
            await client.put("/notebooks/no-such-id/name", json={"name": "x"}, headers=headers),
        ),
        (
            rename,
            409,
            await client.put(
                f"/notebooks/{notebook}/name",
                json={"name": "x", "expected_revision": 99},
                headers=headers,
            ),
        ),
        (
            rename,
            412,
            await client.put(
                f"/notebooks/{notebook}/name",
                json={"name": "x"},
                headers={**headers, "If-Match": '"99"'},
            ),
        ),
        (
            by_id(document, "register"),
            409,
            await client.post(
                "/auth/register",
                json={
                    "email": (await client.get("/me", headers=headers)).json()["email"],
                    "password": "long enough password",
                },
            ),
        ),
        (
            by_id(document, "issueToken"),
            401,
            await client.post(
                "/auth/token",
                json={"email": f"nobody-{uuid.uuid4().hex}@example.com", "password": "x" * 8},
            ),
        ),
        (
            by_id(document, "getMe"),
            401,
            await client.get("/me", headers=auth_headers("not-a-token")),
        ),
        (by_id(document, "health"), 200, await client.get("/health")),
    ]
    for operation, status, response in cases:
        assert response.status_code == status, (operation["operationId"], response.text)
        assert_matches(document, response_schema(operation, status), response.json())
    conflict = cases[2][2].json()
    assert conflict["revision"] == 0, "409 carries the current revision"


def test_each_route_documents_the_errors_it_gives(document: dict[str, Any]) -> None:
    edits = ["renameNotebook", "setNotebookConnection", "insertCell", "updateCell", "moveCell"]
    for operation_id in [*edits, "deleteNotebook", "deleteCell"]:
        operation = by_id(document, operation_id)
        for status in (400, 401, 404, 409, 412):
            assert str(status) in operation["responses"], (operation_id, status)
        # A cell's code edit may merge (SPEC §11): its conflicts list the events in the way.
        body = "MergeConflict" if operation_id == "updateCell" else "RevisionConflictBody"
        for status in (409, 412):
            schema = schema_of(document, body)
            assert response_schema(operation, status) == {"$ref": f"#/components/schemas/{body}"}
            assert "revision" in schema["required"]
    for operation_id in [*edits, "createNotebook", "writeCellOutputs", "register", "issueToken"]:
        assert "413" in by_id(document, operation_id)["responses"], operation_id

    merge = schema_of(document, "MergeConflict")["properties"]["conflicts"]
    assert merge["items"] == {"$ref": "#/components/schemas/Event"}
    assert "merged" in schema_of(document, "CellSaved")["properties"]

    bad_input = schema_of(document, "InvalidInputBody")
    assert {"status_code", "detail"} <= set(bad_input["required"])
    assert "field" in bad_input["properties"]

    token = by_id(document, "issueToken")["responses"]
    assert "Retry-After" in token["429"]["headers"]
    assert "401" in token

    health = by_id(document, "health")
    assert response_schema(health, 503) == {"$ref": "#/components/schemas/Health"}
    assert "304" in by_id(document, "getNotebook")["responses"]


def test_the_limits_the_server_enforces_are_stated(document: dict[str, Any]) -> None:
    def prop(schema: str, field: str) -> dict[str, Any]:
        value: dict[str, Any] = schema_of(document, schema)["properties"][field]
        return value

    assert prop("Registration", "password")["minLength"] == 8
    assert prop("NotebookRename", "name")["maxLength"] == 255
    assert prop("NotebookCreate", "name")["maxLength"] == 255
    assert prop("CellUpdate", "code")["maxLength"] == 256 * 1024
    assert prop("CellCreate", "index")["minimum"] == 0
    assert prop("CellMove", "index")["minimum"] == 0
    for schema in ("NotebookRename", "NotebookConnection", "CellCreate", "CellUpdate", "CellMove"):
        assert prop(schema, "expected_revision")["minimum"] == 0, schema
    search = by_id(document, "searchNotebooks")["parameters"]
    limit = next(parameter for parameter in search if parameter["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, 100)
    deletion = by_id(document, "deleteCell")["parameters"]
    expected = next(p for p in deletion if p["name"] == "expected_revision")["schema"]
    assert expected["minimum"] == 0


def test_operations_and_request_fields_are_described(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        name = f"{method.upper()} {path}"
        summary = operation.get("summary", "")
        assert summary and " " in summary, (name, summary)  # a phrase, not "ListNotebooks"
        assert operation.get("description"), name
    bodies = {
        reference.split("/")[-1]
        for _, _, operation in operations(document)
        if "requestBody" in operation
        for reference in re.findall(
            r"#/components/schemas/(\w+)", str(operation["requestBody"]["content"])
        )
    }
    assert bodies >= {"Registration", "Credentials", "CellCreate", "CellOutputs"}
    for name in bodies:
        for field, schema in schema_of(document, name)["properties"].items():
            assert schema.get("description"), f"{name}.{field}"


async def test_the_index_points_at_the_docs_the_document_and_health(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    index = response.json()
    assert index == {
        "service": "cellar",
        "version": __version__,
        "docs": "/schema/swagger",
        "openapi": "/schema/openapi.json",
        "health": "/health",
    }
    for path in (index["docs"], index["openapi"], index["health"]):
        assert (await client.get(path)).status_code == 200, path


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_the_docs_page_needs_nothing_but_this_server(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), "an external host"
    references = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert len(references) == 4, references  # script, preset, stylesheet, icon
    expected_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for reference in references:
        assert reference.startswith("/schema/swagger-ui/"), reference
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        suffix = reference[reference.rindex(".") :]
        assert asset.headers["content-type"].startswith(expected_types[suffix]), reference
        assert len(asset.content) > 500, reference
    css = (await client.get("/schema/swagger-ui/swagger-ui.css")).text
    assert not re.findall(r"url\((?![\"']?data:)", css), "the stylesheet loads something"
