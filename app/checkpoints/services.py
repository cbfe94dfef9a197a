"""Checkpoints and cell restores (SPEC §13): one method per route, the store's statements.

- A checkpoint is taken in one transaction that first locks the notebook
  row (``room``): no change of the notebook or of its run states can fall
  between the cells and the runs it copies, and two checkpoints of one
  notebook count one after the other.  At ``MAX_CHECKPOINTS_PER_NOTEBOOK``
  the oldest unnamed ones go first (with the payloads only they referred
  to); when every one is named, the new one is refused (409).
- A restore is one change of the notebook (``_change``: revision + 1, event
  ``restore``) and the run states replaced, in one transaction.
- A cell comes back from its history as a ``cell_update`` (the cell is
  there) or, when it was deleted, as a ``cell_insert`` of the same id at its
  old index (the end when the list is now shorter), its type and metadata
  taken from its delete event (or its insert event).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from app.database import connection, transaction
from app.errors import Conflict, InvalidInput, NotFound
from app.notebooks.cells import ENCODE, api_cell, make_cell
from app.notebooks.schemas import CELL_TYPES, Cell, Notebook
from app.notebooks.services import _addressable, _change
from app.replicas import routing
from app.store import checkpoints as store
from app.store import notebooks as notebook_store
from app.store.notebooks import Changed

if TYPE_CHECKING:
    import asyncpg

    from app.notebooks.services import NotebookService
    from app.settings import Settings
    from app.store.checkpoints import Checkpoint
    from app.store.notebooks import Precondition


class _Deleted(msgspec.Struct, frozen=True):
    index: int | None = None
    cell: dict[str, Any] | None = None


_DELETED = msgspec.json.Decoder(_Deleted)
_CELL = msgspec.json.Decoder(dict[str, Any])


def _checkpoint_id(value: str) -> UUID:
    """A checkpoint id that is no UUID names no checkpoint: 404, as a missing one."""
    try:
        return UUID(value)
    except ValueError:
        raise NotFound("checkpoint not found") from None


class CheckpointService:
    def __init__(self, settings: Settings, notebooks: NotebookService) -> None:
        self.settings = settings
        self.notebooks = notebooks

    async def create(self, user_id: UUID, notebook_id: str, name: str | None) -> Checkpoint:
        """Take a checkpoint, making room by evicting the oldest unnamed ones."""
        _addressable(notebook_id)
        if name is not None and len(name) > self.settings.max_name_length:
            raise InvalidInput("name", f"longer than {self.settings.max_name_length} characters")
        limit = self.settings.max_checkpoints_per_notebook
        async with transaction() as conn:
            room = await store.room(conn, notebook_id, user_id)
            if room is None:
                raise NotFound("notebook not found")
            excess = room.count - limit + 1
            if excess > 0:
                if room.unnamed < excess:
                    raise Conflict(
                        f"the notebook has {room.count} checkpoints, the most it may keep "
                        f"(MAX_CHECKPOINTS_PER_NOTEBOOK = {limit}), and they are all named: "
                        "delete one first"
                    )
                victims = await store.oldest_unnamed(conn, notebook_id, user_id, excess)
                await store.delete(conn, notebook_id, user_id, victims)
            return await store.create(conn, notebook_id, user_id, name)

    async def list(self, user_id: UUID, notebook_id: str) -> list[Checkpoint]:
        _addressable(notebook_id)
        # A replica may answer; one that does not know the notebook yet leaves it to the
        # primary (app.replicas.routing).
        found = await routing.read(
            lambda conn: store.listed(conn, notebook_id, user_id),
            fresh=lambda listed: listed is not None,
        )
        if found is None:
            raise NotFound("notebook not found")
        return found

    async def read(self, user_id: UUID, notebook_id: str, checkpoint: str) -> Notebook:
        """The notebook as the checkpoint holds it, in GET's shape, without restoring it."""
        _addressable(notebook_id)
        checkpoint_id = _checkpoint_id(checkpoint)
        row = await routing.read(
            lambda conn: store.read(conn, notebook_id, user_id, checkpoint_id),
            fresh=lambda found: found is not None,
        )
        if row is None:
            raise NotFound("checkpoint not found")
        return self.notebooks.shown(row)

    async def restore(
        self, user_id: UUID, notebook_id: str, checkpoint: str, pre: Precondition
    ) -> Changed:
        """Make the notebook equal to the checkpoint again: one new revision (event ``restore``)."""
        _addressable(notebook_id)
        checkpoint_id = _checkpoint_id(checkpoint)

        async def attempt(conn: asyncpg.Connection) -> Changed | None:
            if not await store.exists(conn, notebook_id, user_id, checkpoint_id):
                if await notebook_store.state(conn, notebook_id, user_id) is None:
                    raise NotFound("notebook not found")
                raise NotFound("checkpoint not found")
            return await store.restore(conn, notebook_id, user_id, pre, checkpoint_id)

        return await _change(attempt, user_id, notebook_id, pre, atomic=True)

    async def delete(self, user_id: UUID, notebook_id: str, checkpoint: str) -> None:
        _addressable(notebook_id)
        checkpoint_id = _checkpoint_id(checkpoint)
        async with transaction() as conn:
            gone = await store.delete(conn, notebook_id, user_id, [checkpoint_id])
        if not gone:
            raise NotFound("checkpoint not found")

    async def restore_cell(
        self, user_id: UUID, notebook_id: str, cell_id: str, seq: int, pre: Precondition
    ) -> tuple[Cell, Changed]:
        """Put the cell's code at event ``seq`` back (SPEC §13)."""
        _addressable(notebook_id, cell_id)
        async with connection() as conn:
            version = await store.cell_version(conn, notebook_id, user_id, cell_id, seq)
        if version is None:
            raise NotFound("notebook not found")
        if version.code is None:
            raise NotFound(f"the cell has no version at seq {seq} (see its history)")
        if version.present:
            shown, edited = await self.notebooks.update_cell(
                user_id, notebook_id, cell_id, version.code, pre
            )
            return shown, Changed(edited.revision, edited.seq)
        deleted = _DELETED.decode(version.deleted) if version.deleted else _Deleted()
        base = deleted.cell or (_CELL.decode(version.inserted) if version.inserted else {})
        cell_type = base.get("type")
        metadata = base.get("metadata")
        cell = make_cell(
            cell_type if cell_type in CELL_TYPES else "python",
            version.code,
            cell_id,
            metadata if isinstance(metadata, dict) else None,
        )
        index = deleted.index
        if index is None or index > version.cell_count:
            index = None  # the end: the list is shorter now (or the index was not recorded)
        document = ENCODE(cell).decode()
        limit = self.settings.max_cells_per_notebook
        changed = await _change(
            lambda conn: notebook_store.insert_cell(
                conn, notebook_id, user_id, pre, document, index, limit
            ),
            user_id,
            notebook_id,
            pre,
            then=lambda count: (
                InvalidInput("cells", f"a notebook holds at most {limit} cells")
                if count >= limit
                else None
            ),
        )
        return api_cell(cell), changed
