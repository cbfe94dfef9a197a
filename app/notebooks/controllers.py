"""Notebook and cell routes (SPEC §3): the frontend's contract.

Each handler is one service call.  Conditional requests are handled here
because they are HTTP: ``ETag: "<revision>"`` on GET with 304 for a
matching ``If-None-Match``, and ``If-Match: "<revision>"`` on mutations as
an alternative to ``expected_revision`` (a mismatch is 412, not 409).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, cast

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED

from app.auth.guards import AuthUser
from app.cursors import MAX_CURSOR_LENGTH
from app.errors import InvalidInput, NotFound
from app.history.headers import seq_header, seq_header_spec
from app.history.schemas import MergeConflict
from app.ipynb.controllers import IpynbAnswer, ipynb_response, wants_ipynb
from app.ipynb.services import IpynbService
from app.notebooks.graph import Graph
from app.notebooks.schemas import (
    MAX_PAGE,
    MAX_REVISION,
    CellCreate,
    CellCreated,
    CellMove,
    CellOutputs,
    CellSaved,
    CellUpdate,
    Done,
    Notebook,
    NotebookConnection,
    NotebookCreate,
    NotebookCreated,
    NotebookList,
    NotebookRename,
    NotebookRestore,
    Saved,
    TrashList,
)
from app.notebooks.services import NotebookService, Precondition
from app.system.openapi import BEARER, error_response, error_responses

# GET /notebooks/{id} answers JSON or .ipynb by Accept: caches must key on it.
VARY = {"Vary": "Accept"}
_ENTITY_TAG = re.compile(r'^\s*(?:W/)?"([0-9]+)"\s*$')

# What a mutation of a notebook can answer besides success.
EDIT_ERRORS = error_responses(400, 401, 404, 409, 412, 413)

ExpectedRevisionQuery = Annotated[
    int | None,
    QueryParameter(
        ge=0,
        le=MAX_REVISION,
        description="Delete only at this revision (else 409, nothing changes).",
        # Litestar leaves a bound of 0 out of the document unless it is spelled out.
        schema_extra={"minimum": 0},
    ),
]


def etag(revision: int) -> str:
    return f'"{revision}"'


def parse_if_match(
    header: Annotated[
        str | None,
        HeaderParameter(
            name="If-Match",
            required=False,
            description='Apply only at this revision, e.g. `"12"` (else 412); `*` or absent: '
            "no condition.",
        ),
    ] = None,
) -> int | None:
    """``"<revision>"`` → that revision; absent or ``*`` → no condition."""
    if header is None or header.strip() == "*":
        return None
    match = _ENTITY_TAG.match(header)
    if match is None:
        raise InvalidInput("If-Match", 'expected a quoted revision such as "12"')
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > len(str(MAX_REVISION)) or int(digits) > MAX_REVISION:
        raise InvalidInput("If-Match", f"revision out of range 0…{MAX_REVISION}")
    return int(digits)


def known_revision(tags: set[str]) -> int | None:
    """The newest revision among ``If-None-Match``'s entity tags: the client has seen it,
    so no answer may come from a replica that is behind it.  Others' tags count for nothing."""
    revisions = [
        int(match.group(1)) for tag in tags if (match := _ENTITY_TAG.match(tag)) is not None
    ]
    return max(revisions, default=None)


class NotebookController(Controller):
    path = "/notebooks"
    tags = ["notebooks"]
    security = BEARER
    dependencies = {"if_match": Provide(parse_if_match, sync_to_thread=False)}

    @get(
        operation_id="listNotebooks",
        summary="List your notebooks",
        responses=error_responses(400, 401),
    )
    async def list_notebooks(
        self,
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        limit: Annotated[
            int | None,
            QueryParameter(
                ge=1,
                le=MAX_PAGE,
                description="Notebooks per page (1 to 1,000); absent: every notebook at once.",
            ),
        ] = None,
        cursor: Annotated[
            str | None,
            QueryParameter(
                max_length=MAX_CURSOR_LENGTH,
                description="The previous page's `next_cursor` (opaque; see docs/paging.md).",
            ),
        ] = None,
    ) -> NotebookList:
        """The caller's notebooks, newest first, all at once or in pages (``limit``, ``cursor``).

        The first call of a new user creates their blank notebook and the demo notebook.
        """
        return await notebooks.list(current_user.id, limit, cursor)

    # Declared before /{notebook_id}: Litestar matches a static segment before a
    # parameter anyway, so "trash" is never taken for a notebook's id.
    @get(
        "/trash",
        operation_id="listTrash",
        summary="List your trashed notebooks",
        responses=error_responses(401),
    )
    async def list_trash(
        self, current_user: NamedDependency[AuthUser], notebooks: NamedDependency[NotebookService]
    ) -> TrashList:
        """The caller's notebooks in the trash, most recently deleted first (SPEC §13).

        They stay `TRASH_RETENTION_DAYS` (default 30), then are deleted for good.
        """
        return await notebooks.trash(current_user.id)

    @delete("/trash", status_code=HTTP_200_OK, include_in_schema=False)
    async def delete_trash(self) -> None:
        """`/notebooks/trash` is the trash, no notebook: deleting it finds no notebook (404).

        Without this the static route would answer 405 to what reads as
        `DELETE /notebooks/{notebook_id}` with the id `trash`.
        """
        raise NotFound("notebook not found")

    @post(
        operation_id="createNotebook",
        summary="Create a notebook",
        responses=error_responses(400, 401, 413),
        response_headers=seq_header_spec(),
    )
    async def create_notebook(
        self,
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        data: JSONBody[NotebookCreate | None] = None,
    ) -> Response[NotebookCreated]:
        """A new notebook with one empty python cell (the body may be left out)."""
        name = data.name if data is not None else None
        notebook_id = await notebooks.create(current_user.id, name)
        return Response(NotebookCreated(notebook_id=notebook_id), headers=seq_header(1))

    @get(
        "/{notebook_id:str}",
        operation_id="getNotebook",
        summary="Get a notebook with its cells",
        response_headers=[
            ResponseHeader(
                name="ETag",
                value='"12"',  # documents the type only: the handler sets the real one
                description='The revision as an entity tag, e.g. `"12"`.',
                documentation_only=True,
            ),
            *seq_header_spec(),
        ],
        responses={
            304: ResponseSpec(
                None, description="`If-None-Match` names the current revision: nothing sent."
            ),
            **error_responses(401, 404),
        },
        operation_class=IpynbAnswer,
    )
    async def get_notebook(
        self,
        request: Request[Any, Any, Any],
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        ipynb: NamedDependency[IpynbService],
        if_none_match: Annotated[
            str | None,
            HeaderParameter(
                name="If-None-Match",
                required=False,
                description="ETags the caller holds; the current one answers 304.",
            ),
        ] = None,
    ) -> Response[Notebook]:
        """One notebook with its cells and their run state; 304 when the ETag matches.

        With `Accept: application/x-ipynb+json` preferred, the notebook as an .ipynb file
        instead, as `GET /notebooks/{id}/ipynb` answers it (no ETag: it also holds outputs,
        which change without a new revision).
        """
        if wants_ipynb(request):
            exported = await ipynb.export(current_user.id, notebook_id)
            # Documented by IpynbAnswer; Response[Notebook] documents the JSON answer.
            return cast("Response[Notebook]", ipynb_response(exported, VARY))
        known, current = None, None
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            known = known_revision(tags)
            current = await notebooks.revision(current_user.id, notebook_id, known)
            if etag(current.revision) in tags or "*" in tags:
                return Response(
                    content=None,  # type: ignore[arg-type]
                    status_code=HTTP_304_NOT_MODIFIED,
                    headers={"ETag": etag(current.revision), **seq_header(current.seq), **VARY},
                )
        answer = await notebooks.encoded(current_user.id, notebook_id, known, current)
        # Already encoded (maybe kept by the read cache): sent as it is.
        return cast(
            "Response[Notebook]",
            Response(
                answer.body,
                media_type=MediaType.JSON,
                headers={"ETag": etag(answer.revision), **seq_header(answer.seq), **VARY},
            ),
        )

    @put(
        "/{notebook_id:str}/name",
        operation_id="renameNotebook",
        summary="Rename a notebook",
        responses=EDIT_ERRORS,
        response_headers=seq_header_spec(),
    )
    async def rename(
        self,
        notebook_id: FromPath[str],
        data: JSONBody[NotebookRename],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        if_match: NamedDependency[int | None],
    ) -> Response[Saved]:
        """Set the notebook's name (`null` clears it); raises the revision by one."""
        pre = Precondition(data.expected_revision, if_match)
        changed = await notebooks.rename(current_user.id, notebook_id, data.name, pre)
        return Response(Saved(revision=changed.revision), headers=seq_header(changed.seq))

    @put(
        "/{notebook_id:str}/db",
        operation_id="setNotebookConnection",
        summary="Set the database of sql cells",
        responses=EDIT_ERRORS,
        response_headers=seq_header_spec(),
    )
    async def set_connection(
        self,
        notebook_id: FromPath[str],
        data: JSONBody[NotebookConnection],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        if_match: NamedDependency[int | None],
    ) -> Response[Saved]:
        """Set the database the notebook's sql cells run against.

        Stored encrypted; reads show it with the password masked. `null` or `""` clears it.
        """
        pre = Precondition(data.expected_revision, if_match)
        changed = await notebooks.set_connection(
            current_user.id, notebook_id, data.connection_string, pre
        )
        return Response(Saved(revision=changed.revision), headers=seq_header(changed.seq))

    @delete(
        "/{notebook_id:str}",
        operation_id="deleteNotebook",
        status_code=HTTP_200_OK,
        summary="Delete a notebook",
        responses=error_responses(400, 401, 404, 409, 412),
        response_headers=seq_header_spec(),
    )
    async def delete_notebook(
        self,
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        if_match: NamedDependency[int | None],
        expected_revision: ExpectedRevisionQuery = None,
        purge: Annotated[
            bool,
            QueryParameter(
                description="Delete for good, from the trash or not: the notebook, its runs, "
                "search rows, history and checkpoints. Cannot be undone."
            ),
        ] = False,
    ) -> Response[Done]:
        """Move the notebook to the trash (one more revision); restorable from there.

        With `?purge=true`, delete it for good instead.
        """
        pre = Precondition(expected_revision, if_match)
        changed = await notebooks.delete(current_user.id, notebook_id, pre, purge=purge)
        return Response(Done(), headers=seq_header(changed.seq))

    @post(
        "/{notebook_id:str}/restore",
        operation_id="restoreNotebook",
        status_code=HTTP_200_OK,
        summary="Restore a notebook from the trash",
        responses=error_responses(400, 401, 404, 409, 412),
        response_headers=seq_header_spec(),
    )
    async def restore_notebook(
        self,
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        if_match: NamedDependency[int | None],
        data: JSONBody[NotebookRestore | None] = None,
    ) -> Response[Saved]:
        """Bring a trashed notebook back as it was (one more revision); 404 if not in the trash."""
        pre = Precondition(data.expected_revision if data is not None else None, if_match)
        changed = await notebooks.restore_from_trash(current_user.id, notebook_id, pre)
        return Response(Saved(revision=changed.revision), headers=seq_header(changed.seq))

    @post(
        "/{notebook_id:str}/cells",
        operation_id="insertCell",
        summary="Insert a cell",
        responses=EDIT_ERRORS,
        response_headers=seq_header_spec(),
    )
    async def insert_cell(
        self,
        notebook_id: FromPath[str],
        data: JSONBody[CellCreate],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        if_match: NamedDependency[int | None],
    ) -> Response[CellCreated]:
        """Insert a cell at `index` (absent: append); answers the cell with its analysis."""
        pre = Precondition(data.expected_revision, if_match)
        cell, changed = await notebooks.insert_cell(
            current_user.id, notebook_id, data.type, data.code, data.index, pre
        )
        return Response(
            CellCreated(cell=cell, revision=changed.revision), headers=seq_header(changed.seq)
        )

    @put(
        "/{notebook_id:str}/cells/{cell_id:str}",
        operation_id="updateCell",
        summary="Edit a cell's code",
        responses={
            **EDIT_ERRORS,
            409: error_response(
                409,
                "`expected_revision` is stale and the cell was changed or deleted since "
                "(`conflicts`); nothing changed.",
                MergeConflict,
            ),
            412: error_response(
                412,
                "`If-Match` is stale and the cell was changed or deleted since "
                "(`conflicts`); nothing changed.",
                MergeConflict,
            ),
        },
        response_headers=seq_header_spec(),
    )
    async def update_cell(
        self,
        notebook_id: FromPath[str],
        cell_id: FromPath[str],
        data: JSONBody[CellUpdate],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        if_match: NamedDependency[int | None],
    ) -> Response[CellSaved]:
        """Replace a cell's code; the server recomputes its `reads` and `writes`.

        A stale `expected_revision` (or `If-Match`) still applies when nobody changed or
        deleted this cell since that revision (`merged: true`); otherwise 409 (412) with
        the `conflicts`.
        """
        pre = Precondition(data.expected_revision, if_match)
        cell, edited = await notebooks.update_cell(
            current_user.id, notebook_id, cell_id, data.code, pre
        )
        return Response(
            CellSaved(revision=edited.revision, cell=cell, merged=edited.merged),
            headers=seq_header(edited.seq),
        )

    @delete(
        "/{notebook_id:str}/cells/{cell_id:str}",
        operation_id="deleteCell",
        status_code=HTTP_200_OK,
        summary="Delete a cell",
        responses=error_responses(400, 401, 404, 409, 412),
        response_headers=seq_header_spec(),
    )
    async def delete_cell(
        self,
        notebook_id: FromPath[str],
        cell_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        if_match: NamedDependency[int | None],
        expected_revision: ExpectedRevisionQuery = None,
    ) -> Response[Saved]:
        """Delete a cell and its run state."""
        pre = Precondition(expected_revision, if_match)
        changed = await notebooks.delete_cell(current_user.id, notebook_id, cell_id, pre)
        return Response(Saved(revision=changed.revision), headers=seq_header(changed.seq))

    @post(
        "/{notebook_id:str}/cells/{cell_id:str}/move",
        operation_id="moveCell",
        status_code=HTTP_200_OK,
        summary="Move a cell",
        responses=EDIT_ERRORS,
        response_headers=seq_header_spec(),
    )
    async def move_cell(
        self,
        notebook_id: FromPath[str],
        cell_id: FromPath[str],
        data: JSONBody[CellMove],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
        if_match: NamedDependency[int | None],
    ) -> Response[Saved]:
        """Move a cell so that it ends at `index` of the new order.

        `[a, b, c, d]`, moving `a` to 2, gives `[b, c, a, d]`.
        """
        pre = Precondition(data.expected_revision, if_match)
        changed = await notebooks.move_cell(current_user.id, notebook_id, cell_id, data.index, pre)
        return Response(Saved(revision=changed.revision), headers=seq_header(changed.seq))

    @put(
        "/{notebook_id:str}/cells/{cell_id:str}/outputs",
        operation_id="writeCellOutputs",
        summary="Store a cell's run state",
        responses=error_responses(400, 401, 404, 413),
        response_headers=seq_header_spec(),
    )
    async def write_outputs(
        self,
        notebook_id: FromPath[str],
        cell_id: FromPath[str],
        data: JSONBody[CellOutputs],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
    ) -> Response[Done]:
        """Store a cell's run state (the execution engine does); the revision does not change."""
        seq = await notebooks.write_outputs(current_user.id, notebook_id, cell_id, data)
        return Response(Done(), headers=seq_header(seq))

    @get(
        "/{notebook_id:str}/graph",
        operation_id="getNotebookGraph",
        summary="Get the dependency graph",
        responses=error_responses(401, 404),
    )
    async def graph(
        self,
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        notebooks: NamedDependency[NotebookService],
    ) -> Response[Graph]:
        """Which cell feeds which: writer → reader edges, a run order, cycles, conflicts."""
        answer = await notebooks.encoded_graph(current_user.id, notebook_id)
        # Already encoded (maybe kept by the read cache): sent as it is.
        return cast("Response[Graph]", Response(answer.body, media_type=MediaType.JSON))
