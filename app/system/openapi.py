"""How the API describes itself: the OpenAPI document at ``/schema`` and its docs page.

Controllers state, at decorator level, what each route really answers
(``error_responses``), whether it needs a token (``BEARER``) and a summary;
this module owns the shared parts: the bearer security scheme, the error
body Structs (the shapes ``app.errors`` sends, checked against real answers
by ``tests/api/test_openapi.py``), the document's configuration, and Swagger
UI served from the ``swagger-ui-bundle-v2`` package, so the docs page works
with no network (Litestar's render plugins load their JavaScript, CSS and
favicon from CDNs by default).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
    SecurityRequirement,
    SecurityScheme,
    Tag,
)
from litestar.static_files import create_static_files_router

from app import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping

    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.router import Router
    from litestar.typing import FieldDefinition

SCHEMA_PATH = "/schema"
DOCS_PATH = f"{SCHEMA_PATH}/swagger"
DOCUMENT_PATH = f"{SCHEMA_PATH}/openapi.json"
ASSETS_PATH = "/swagger-ui"  # under SCHEMA_PATH

BEARER_SCHEME = "BearerToken"
BEARER: list[SecurityRequirement] = [{BEARER_SCHEME: []}]
"""``security=BEARER`` on every controller the bearer middleware protects."""


class ErrorBody(msgspec.Struct, frozen=True):
    """An error answer."""

    status_code: Annotated[int, msgspec.Meta(description="The HTTP status code, repeated.")]
    detail: Annotated[str, msgspec.Meta(description="What went wrong, for a person to read.")]


class InvalidInputBody(msgspec.Struct, frozen=True):
    """Bad input: the answer names the field at fault."""

    status_code: Annotated[int, msgspec.Meta(description="400.")]
    detail: Annotated[
        str, msgspec.Meta(description="What is wrong, starting with the field's name.")
    ]
    field: Annotated[
        str | None,
        msgspec.Meta(description="The body field, query parameter or header at fault."),
    ] = None
    extra: Annotated[
        list[dict[str, Any]] | None,
        msgspec.Meta(description="The decoder's details, when the body did not decode."),
    ] = None


class RevisionConflictBody(msgspec.Struct, frozen=True):
    """The notebook is not at the revision the request expected; nothing changed."""

    status_code: Annotated[int, msgspec.Meta(description="409 or 412.")]
    detail: Annotated[str, msgspec.Meta(description="What went wrong, for a person to read.")]
    revision: Annotated[
        int,
        msgspec.Meta(ge=0, description="The notebook's current revision: reload, then retry."),
    ]


_ERRORS: dict[int, tuple[str, type[msgspec.Struct], dict[str, Any]]] = {
    400: (
        "Bad input: a malformed body, or a value out of bounds; `field` names it.",
        InvalidInputBody,
        {"status_code": 400, "detail": "name: Expected `str` of length <= 255", "field": "name"},
    ),
    401: (
        "No valid bearer token: missing, malformed, expired, or its user is inactive.",
        ErrorBody,
        {"status_code": 401, "detail": "missing bearer token"},
    ),
    404: (
        "No such notebook or cell among the caller's (another user's answers the same).",
        ErrorBody,
        {"status_code": 404, "detail": "notebook not found"},
    ),
    409: (
        "`expected_revision` is not the current revision; nothing changed.",
        RevisionConflictBody,
        {"status_code": 409, "detail": "revision conflict", "revision": 7},
    ),
    412: (
        "`If-Match` names another revision than the current one; nothing changed.",
        RevisionConflictBody,
        {"status_code": 412, "detail": "revision conflict", "revision": 7},
    ),
    413: (
        "The request body is larger than the server accepts (`MAX_REQUEST_BODY_BYTES`); "
        "`field` names the limit.",
        InvalidInputBody,
        {
            "status_code": 413,
            "detail": "body: larger than the 33554432 bytes a request may carry "
            "(MAX_REQUEST_BODY_BYTES)",
            "field": "body",
        },
    ),
    415: (
        "The body is not in a format this route takes (`Content-Type`).",
        InvalidInputBody,
        {
            "status_code": 415,
            "detail": "Content-Type: expected application/x-ipynb+json or application/json",
            "field": "Content-Type",
        },
    ),
    429: (
        "Too many token requests from this address: wait `Retry-After` seconds.",
        ErrorBody,
        {"status_code": 429, "detail": "API rate limit exceeded"},
    ),
    503: (
        "The database cannot be reached right now; retry after `Retry-After` seconds.",
        ErrorBody,
        {"status_code": 503, "detail": "the database is unavailable; try again shortly"},
    ),
}


def error_response(
    status_code: int,
    description: str | None = None,
    body: type[msgspec.Struct] | None = None,
    detail: str | None = None,
) -> ResponseSpec:
    """One documented error answer; each argument defaults to the usual one for the status."""
    usual, usual_body, example = _ERRORS[status_code]
    if detail is not None:
        example = {**example, "detail": detail}
    return ResponseSpec(
        data_container=body or usual_body,
        description=description or usual,
        generate_examples=False,
        examples=[Example(summary=str(status_code), value=example)],
    )


def error_responses(
    *status_codes: int, special: Mapping[int, ResponseSpec] | None = None
) -> dict[int, ResponseSpec]:
    """``responses=`` for a route that can answer these errors (the usual ones, or ``special``).

    Every route documented this way needs the database, so each also lists the
    503 it answers while the database is unreachable (app.system.outage).
    """
    responses = {code: error_response(code) for code in (*status_codes, 503)}
    responses.update(special or {})
    return responses


@dataclass
class RateLimitedOperation(Operation):
    """``operation_class`` of a rate-limited route: its 429 states the ``Retry-After`` header."""

    def __post_init__(self) -> None:
        response = (self.responses or {}).get("429")
        if isinstance(response, OpenAPIResponse):
            response.headers = {
                "Retry-After": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
                    description="Seconds until this address may ask for a token again.",
                )
            }


class StructSchemas(StructSchemaPlugin):
    """Litestar's schemas of msgspec Structs, described, and keeping bounds that are zero.

    A Struct's docstring becomes its schema's description.  Litestar copies
    a field's constraints into the document only when they are truthy, so
    ``ge=0`` vanished from optional fields such as ``expected_revision`` and
    a cell's ``index``; msgspec still knows them.
    """

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):
            return schema
        if schema.description is None and info.cls.__doc__:
            schema.description = inspect.cleandoc(info.cls.__doc__)
        for field in info.fields:
            target = (schema.properties or {}).get(field.encode_name)
            if not isinstance(target, Schema):
                continue
            for key, value in _numeric_bounds(field.type).items():
                if getattr(target, key) is None:
                    setattr(target, key, value)
        return schema


def _numeric_bounds(kind: msgspec.inspect.Type) -> dict[str, float]:
    """The bounds of a number field (also optional, also described); none for other fields."""
    if isinstance(kind, msgspec.inspect.Metadata):
        kind = kind.type
    members = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
    numbers = [
        number
        for member in members
        if isinstance(
            number := member.type if isinstance(member, msgspec.inspect.Metadata) else member,
            msgspec.inspect.IntType | msgspec.inspect.FloatType,
        )
    ]
    if len(numbers) != 1:
        return {}
    bounds = {
        "minimum": numbers[0].ge,
        "exclusive_minimum": numbers[0].gt,
        "maximum": numbers[0].le,
        "exclusive_maximum": numbers[0].lt,
    }
    return {key: value for key, value in bounds.items() if value is not None}


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI whose JavaScript, CSS and icon come from this server, not a CDN."""

    def __init__(self) -> None:
        from swagger_ui_bundle import swagger_ui_path

        self.assets_directory = swagger_ui_path
        assets = f"{SCHEMA_PATH}{ASSETS_PATH}"
        super().__init__(
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
            path=["/", "/swagger"],
        )

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(
            create_static_files_router(
                path=ASSETS_PATH,
                directories=[self.assets_directory],
                name="swagger-ui",
                include_in_schema=False,
                opt={"exclude_from_auth": True},
            )
        )


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Cellar",
        version=__version__,
        summary="The notebook store behind a reactive notebook web app.",
        description=(
            "Users, notebooks and their cells, search. Every route but `/`, `/health`, "
            "`/auth/register`, `/auth/token` and this schema needs `Authorization: Bearer "
            "<token>`: get one from `POST /auth/token`, then use *Authorize*. Mutations take "
            "an optional `expected_revision` (or `If-Match`); when it is not the current "
            "revision the answer is 409 (412) with the current `revision`, and nothing changes. "
            "With read replicas configured, a successful mutation's answer carries "
            "`Cellar-Consistency: <token>`: send the last one back on reads and they never "
            "show older data than you wrote (docs/scaling.md)."
        ),
        path=SCHEMA_PATH,
        render_plugins=[OfflineSwagger()],
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                BEARER_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="A token from `POST /auth/token` (or the configured identity "
                    "provider's).",
                )
            }
        ),
        tags=[
            Tag(name="auth", description="Accounts and tokens."),
            Tag(name="users", description="The caller's account."),
            Tag(name="notebooks", description="Notebooks and their cells."),
            Tag(name="search", description="Search over the caller's notebooks."),
            Tag(name="system", description="Service index and health."),
        ],
    )
