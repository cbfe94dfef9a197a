"""Checkpoint routes and the cell restore (SPEC §13): each handler one service call."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from app.auth.guards import AuthUser
from app.checkpoints.schemas import (
    CellRestore,
    Checkpoint,
    CheckpointCreate,
    CheckpointList,
    Restore,
)
from app.checkpoints.services import CheckpointService
from app.history.headers import seq_header, seq_header_spec
from app.notebooks.controllers import parse_if_match
from app.notebooks.schemas import CellSaved, Done, Notebook, Saved
from app.notebooks.services import Precondition
from app.system.openapi import BEARER, error_responses


class CheckpointController(Controller):
    path = "/notebooks/{notebook_id:str}"
    tags = ["checkpoints"]
    security = BEARER
    dependencies = {"if_match": Provide(parse_if_match, sync_to_thread=False)}

    @post(
        "/checkpoints",
        operation_id="createCheckpoint",
        status_code=HTTP_201_CREATED,
        summary="Take a checkpoint",
        responses=error_responses(400, 401, 404, 409, 413),
    )
    async def create(
        self,
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        checkpoints: NamedDependency[CheckpointService],
        data: JSONBody[CheckpointCreate | None] = None,
    ) -> Checkpoint:
        """A snapshot of the cells and their run state; 409 when every kept one is named.

        At `MAX_CHECKPOINTS_PER_NOTEBOOK` (default 50) the oldest unnamed one makes room.
        """
        name = data.name if data is not None else None
        return await checkpoints.create(current_user.id, notebook_id, name)

    @get(
        "/checkpoints",
        operation_id="listCheckpoints",
        summary="List a notebook's checkpoints",
        responses=error_responses(401, 404),
    )
    async def list_checkpoints(
        self,
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        checkpoints: NamedDependency[CheckpointService],
    ) -> CheckpointList:
        """The notebook's checkpoints, newest first."""
        return CheckpointList(checkpoints=await checkpoints.list(current_user.id, notebook_id))

    @get(
        "/checkpoints/{checkpoint_id:str}",
        operation_id="getCheckpoint",
        summary="Read a checkpoint",
        responses=error_responses(401, 404),
    )
    async def read(
        self,
        notebook_id: FromPath[str],
        checkpoint_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        checkpoints: NamedDependency[CheckpointService],
    ) -> Notebook:
        """The notebook as the checkpoint holds it, without restoring it.

        GET's shape: the checkpoint's cells, run state and revision; `updated_at` is when
        it was taken; name and connection string are the notebook's (a restore keeps them).
        """
        return await checkpoints.read(current_user.id, notebook_id, checkpoint_id)

    @post(
        "/checkpoints/{checkpoint_id:str}/restore",
        operation_id="restoreCheckpoint",
        status_code=HTTP_200_OK,
        summary="Restore a checkpoint",
        responses=error_responses(400, 401, 404, 409, 412),
        response_headers=seq_header_spec(),
    )
    async def restore(
        self,
        notebook_id: FromPath[str],
        checkpoint_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        checkpoints: NamedDependency[CheckpointService],
        if_match: NamedDependency[int | None],
        data: JSONBody[Restore | None] = None,
    ) -> Response[Saved]:
        """Make the notebook equal to the checkpoint again, as one new revision.

        Cells and run state come back; the name and connection string stay.
        """
        pre = Precondition(data.expected_revision if data is not None else None, if_match)
        changed = await checkpoints.restore(current_user.id, notebook_id, checkpoint_id, pre)
        return Response(Saved(revision=changed.revision), headers=seq_header(changed.seq))

    @delete(
        "/checkpoints/{checkpoint_id:str}",
        operation_id="deleteCheckpoint",
        status_code=HTTP_200_OK,
        summary="Delete a checkpoint",
        responses=error_responses(401, 404),
    )
    async def delete_checkpoint(
        self,
        notebook_id: FromPath[str],
        checkpoint_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        checkpoints: NamedDependency[CheckpointService],
    ) -> Done:
        """Delete the checkpoint (the notebook does not change)."""
        await checkpoints.delete(current_user.id, notebook_id, checkpoint_id)
        return Done()

    @post(
        "/cells/{cell_id:str}/restore",
        operation_id="restoreCell",
        status_code=HTTP_200_OK,
        summary="Restore a cell from its history",
        responses=error_responses(400, 401, 404, 409, 412),
        response_headers=seq_header_spec(),
    )
    async def restore_cell(
        self,
        notebook_id: FromPath[str],
        cell_id: FromPath[str],
        data: JSONBody[CellRestore],
        current_user: NamedDependency[AuthUser],
        checkpoints: NamedDependency[CheckpointService],
        if_match: NamedDependency[int | None],
    ) -> Response[CellSaved]:
        """Put back the cell's code as it was at event `seq` (`GET …/cells/{cell_id}/history`).

        A deleted cell comes back with its id at its old index (the end if the list is
        shorter now).
        """
        pre = Precondition(data.expected_revision, if_match)
        cell, changed = await checkpoints.restore_cell(
            current_user.id, notebook_id, cell_id, data.seq, pre
        )
        return Response(
            CellSaved(revision=changed.revision, cell=cell), headers=seq_header(changed.seq)
        )
