""".ipynb routes (SPEC §12): import a Jupyter notebook, export one.

``POST /notebooks/import`` takes the file itself as the body (no JSON
envelope), so the handler reads the raw bytes: nbformat, not Litestar,
decides what a notebook is.  ``GET /notebooks/{id}/ipynb`` answers the file
with a download name; ``GET /notebooks/{id}`` answers the same when the
client prefers ``application/x-ipynb+json`` (``wants_ipynb``; the notebook
controller asks).  The OpenAPI document describes both bodies as nbformat's
notebook object (``IPYNB_BODY``, ``ImportOperation``, ``IpynbAnswer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from app.auth.guards import AuthUser
from app.errors import UnsupportedMediaType
from app.history.headers import seq_header, seq_header_spec
from app.ipynb.filenames import content_disposition
from app.ipynb.schemas import IpynbImported
from app.ipynb.services import Exported, IpynbService
from app.notebooks.schemas import NO_NUL
from app.system.openapi import BEARER, error_responses

IPYNB = "application/x-ipynb+json"
JSON = "application/json"
IMPORT_MEDIA_TYPES = (IPYNB, JSON)
# What GET /notebooks/{id} can answer, the default first.
REPRESENTATIONS = [JSON, IPYNB]

_SOURCE = Schema(
    one_of=[
        Schema(type=OpenAPIType.STRING),
        Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING)),
    ],
    description="The text, as one string or as a list of lines.",
)
_CELL = Schema(
    type=OpenAPIType.OBJECT,
    required=["cell_type", "metadata", "source"],
    properties={
        "id": Schema(
            type=OpenAPIType.STRING,
            description="nbformat 4.5+: kept when valid and unique, else a new one "
            "(listed in `warnings`).",
        ),
        "cell_type": Schema(type=OpenAPIType.STRING, enum=["code", "markdown", "raw"]),
        "metadata": Schema(type=OpenAPIType.OBJECT),
        "source": _SOURCE,
        "outputs": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT)),
        "execution_count": Schema(one_of=[Schema(type=OpenAPIType.INTEGER), Schema(type=None)]),
        "attachments": Schema(type=OpenAPIType.OBJECT),
    },
)
NOTEBOOK = Schema(
    type=OpenAPIType.OBJECT,
    required=["cells", "metadata", "nbformat", "nbformat_minor"],
    properties={
        "cells": Schema(type=OpenAPIType.ARRAY, items=_CELL),
        "metadata": Schema(
            type=OpenAPIType.OBJECT, description="kernelspec, language_info, title, anything."
        ),
        "nbformat": Schema(type=OpenAPIType.INTEGER, enum=[4]),
        "nbformat_minor": Schema(type=OpenAPIType.INTEGER, minimum=0),
    },
    description="A Jupyter notebook file, nbformat 4.",
)
NOTEBOOK_V3 = Schema(
    type=OpenAPIType.OBJECT,
    required=["metadata", "nbformat", "nbformat_minor", "worksheets"],
    properties={
        "metadata": Schema(type=OpenAPIType.OBJECT),
        "nbformat": Schema(type=OpenAPIType.INTEGER, enum=[3]),
        "nbformat_minor": Schema(type=OpenAPIType.INTEGER, minimum=0),
        "worksheets": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT)),
    },
    description="An nbformat 3 notebook: upgraded to 4 on the way in.",
)
IPYNB_BODY = Schema(any_of=[NOTEBOOK, NOTEBOOK_V3])


@dataclass
class ImportOperation(Operation):
    """``operation_class`` of the import: its body is an .ipynb file in either media type."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={media: OpenAPIMediaType(schema=IPYNB_BODY) for media in IMPORT_MEDIA_TYPES},
            required=True,
            description="The .ipynb file's bytes, as Jupyter writes them.",
        )


@dataclass
class IpynbAnswer(Operation):
    """``operation_class`` of a route whose 200 can be the .ipynb file (with a file name)."""

    def __post_init__(self) -> None:
        answer = (self.responses or {}).get("200")
        if not isinstance(answer, OpenAPIResponse):
            return
        content = {media: body for media, body in (answer.content or {}).items() if media != IPYNB}
        content[IPYNB] = OpenAPIMediaType(schema=NOTEBOOK)
        answer.content = content
        answer.headers = {
            **(answer.headers or {}),
            "Content-Disposition": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING),
                description='With the .ipynb: `attachment; filename="<name>.ipynb"` '
                "(and `filename*` for names that are not plain ASCII).",
            ),
        }


def wants_ipynb(request: Request[Any, Any, Any]) -> bool:
    """Whether the client prefers the .ipynb to the JSON notebook (``Accept``)."""
    accept = request.headers.get("accept")
    if accept is None or "ipynb" not in accept:  # the common case, without parsing
        return False
    return request.accept.best_match(REPRESENTATIONS) == IPYNB


def ipynb_response(exported: Exported, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        exported.data,
        media_type=IPYNB,
        headers={"Content-Disposition": content_disposition(exported.name), **(headers or {})},
    )


class IpynbController(Controller):
    path = "/notebooks"
    tags = ["notebooks"]
    security = BEARER

    @post(
        "/import",
        operation_id="importIpynb",
        summary="Import a Jupyter notebook (.ipynb)",
        status_code=HTTP_201_CREATED,
        responses=error_responses(400, 401, 413, 415),
        response_headers=seq_header_spec(),
        operation_class=ImportOperation,
    )
    async def import_ipynb(
        self,
        request: Request[Any, Any, Any],
        current_user: NamedDependency[AuthUser],
        ipynb: NamedDependency[IpynbService],
        name: Annotated[
            str | None,
            QueryParameter(
                max_length=255,
                pattern=NO_NUL,
                description="The new notebook's name; absent: the notebook's metadata title, "
                'else "Untitled".',
            ),
        ] = None,
    ) -> Response[IpynbImported]:
        """A new notebook from an .ipynb body (nbformat 4, or 3 upgraded on the way in).

        What can be repaired is, and `warnings` lists it; a document that is not a notebook
        is a 400 naming what is wrong; a notebook over a limit (cells, one cell's code or
        outputs, the body) a 413 naming it.
        """
        media = request.headers.get("content-type")
        if media is not None and request.content_type[0] not in IMPORT_MEDIA_TYPES:
            raise UnsupportedMediaType(
                "Content-Type", f"expected {IPYNB} or {JSON}, got {request.content_type[0]}"
            )
        data = await request.body()
        imported = await ipynb.import_notebook(current_user.id, data, name)
        return Response(imported, headers=seq_header(1))  # its import event

    @get(
        "/{notebook_id:str}/ipynb",
        operation_id="exportIpynb",
        summary="Export a notebook as .ipynb",
        media_type=IPYNB,
        responses=error_responses(401, 404),
        operation_class=IpynbAnswer,
    )
    async def export_ipynb(
        self,
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        ipynb: NamedDependency[IpynbService],
    ) -> Response[bytes]:
        """The notebook as a Jupyter notebook file (nbformat 4), to download.

        An imported notebook comes back as it came in (metadata, outputs, attachments,
        its nbformat minor), with the edits made since; one made in Cellar is nbformat 4.5,
        its python and sql cells code cells with `metadata.cellar.type`.
        """
        return ipynb_response(await ipynb.export(current_user.id, notebook_id))
