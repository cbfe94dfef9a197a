"""The app's routes as its own OpenAPI document lists them, for tests that must cover every route.

Tests that promise something of "every route" (no 5xx for any integer, 503
while the database is down) walk ``/schema/openapi.json`` instead of a list
of their own, so a route added later is covered without touching them.
``Operation.request`` builds a request the route accepts: path parameters
from the ids a test has made, a small valid JSON body from the schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

METHODS = ("get", "put", "post", "patch", "delete")


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def alternatives(schema: dict[str, Any], document: dict[str, Any]) -> list[dict[str, Any]]:
    """The schemas a value may match (``oneOf``/``anyOf`` flattened, refs resolved)."""
    schema = resolve(schema, document)
    options = schema.get("oneOf") or schema.get("anyOf")
    if options:
        return [alt for option in options for alt in alternatives(option, document)]
    return [schema]


def types(schema: dict[str, Any], document: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for alternative in alternatives(schema, document):
        kind = alternative.get("type")
        found.update(kind if isinstance(kind, list) else [kind] if kind else [])
    return found


def valid_value(
    schema: dict[str, Any], document: dict[str, Any], known: dict[str, Any] | None = None
) -> Any:
    """A small value the schema accepts; ``known`` gives values for named object fields."""
    known = known or {}
    options = [alt for alt in alternatives(schema, document) if alt.get("type") != "null"]
    schema = options[0] if options else {}
    if "enum" in schema:
        return next(value for value in schema["enum"] if value is not None)
    kind = schema.get("type")
    if kind == "object":
        return {
            name: known[name]
            if name in known
            else valid_value(schema["properties"].get(name, {}), document, known)
            for name in schema.get("required", [])
        }
    return {"string": "x", "integer": 0, "number": 0, "boolean": False, "array": []}.get(
        str(kind), "x"
    )


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    content: str | None
    headers: dict[str, str]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    parameters: tuple[dict[str, Any], ...]
    body_schema: dict[str, Any] | None  # the object schema of a JSON body, if it takes one

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def path_parameters(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    def request(
        self,
        document: dict[str, Any],
        ids: dict[str, str],
        known: dict[str, Any] | None = None,
    ) -> Request:
        """A request this route accepts: ``ids`` fill the path (others: "missing")."""
        path = self.path
        for name in self.path_parameters:
            path = path.replace(f"{{{name}}}", ids.get(name, "missing"))
        if self.body_schema is None:
            return Request(self.method, path, None, {})
        body = valid_value(self.body_schema, document, known)
        return Request(self.method, path, json.dumps(body), {"Content-Type": "application/json"})


def operations(document: dict[str, Any]) -> list[Operation]:
    found: list[Operation] = []
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            body_schema = None
            if body is not None:
                objects = [
                    alt
                    for alt in alternatives(body["schema"], document)
                    if alt.get("type") == "object"
                ]
                body_schema = objects[0] if objects else None
            found.append(
                Operation(method, path, tuple(operation.get("parameters", [])), body_schema)
            )
    return found
