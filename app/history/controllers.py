"""History routes (SPEC §11): ``GET /notebooks/{id}/history`` and a cell's code versions."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter

from app.auth.guards import AuthUser
from app.history.headers import seq_header, seq_header_spec
from app.history.schemas import (
    DEFAULT_HISTORY_LIMIT,
    MAX_HISTORY_LIMIT,
    MAX_SEQ,
    CellHistory,
    History,
    Pruned,
)
from app.history.services import HistoryService
from app.system.openapi import BEARER, error_responses


class HistoryController(Controller):
    path = "/notebooks"
    tags = ["history"]
    security = BEARER

    @get(
        "/{notebook_id:str}/history",
        operation_id="getNotebookHistory",
        summary="A notebook's events",
        response_headers=seq_header_spec(),
        responses={
            410: ResponseSpec(Pruned, description="Events after `since` were pruned."),
            **error_responses(400, 401, 404),
        },
    )
    async def history(
        self,
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        history: NamedDependency[HistoryService],
        since: Annotated[
            int | None,
            QueryParameter(
                ge=0,
                le=MAX_SEQ,
                description="Events after this seq (absent: from the oldest kept).",
                schema_extra={"minimum": 0},
            ),
        ] = None,
        limit: Annotated[
            int,
            QueryParameter(
                ge=1, le=MAX_HISTORY_LIMIT, description="How many events at most (1…1,000)."
            ),
        ] = DEFAULT_HISTORY_LIMIT,
    ) -> Response[History]:
        """The notebook's events after `since`, oldest first, one page of `limit`."""
        page, seq = await history.history(current_user.id, notebook_id, since, limit)
        return Response(page, headers=seq_header(seq))

    @get(
        "/{notebook_id:str}/cells/{cell_id:str}/history",
        operation_id="getCellHistory",
        summary="A cell's code versions",
        responses=error_responses(401, 404),
    )
    async def cell_history(
        self,
        notebook_id: FromPath[str],
        cell_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        history: NamedDependency[HistoryService],
    ) -> CellHistory:
        """Each version of the cell's code, newest first; also for a deleted cell."""
        return await history.cell_history(current_user.id, notebook_id, cell_id)
