"""Bodies of the checkpoint and cell-restore routes (SPEC §13).

``Checkpoint``, an item of the list and the answer of a create, is the
store's row (``app.store.checkpoints``), served as it comes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.notebooks.schemas import MAX_REVISION, Name, Revision
from app.store.checkpoints import Checkpoint

__all__ = ["CellRestore", "Checkpoint", "CheckpointCreate", "CheckpointList", "Restore"]

# A seq is a PostgreSQL bigint ≥ 1: larger is a 400 naming the field, never a 500.
Seq = Annotated[
    int,
    msgspec.Meta(
        ge=1, le=MAX_REVISION, description="The event (`seq`) of the cell's version to bring back."
    ),
]


class CheckpointCreate(msgspec.Struct, frozen=True):
    name: (
        Annotated[Name, msgspec.Meta(description="Named checkpoints are never evicted.")] | None
    ) = None


class CheckpointList(msgspec.Struct, frozen=True):
    checkpoints: Annotated[list[Checkpoint], msgspec.Meta(description="Newest first.")]


class Restore(msgspec.Struct, frozen=True):
    expected_revision: Revision | None = None


class CellRestore(msgspec.Struct, frozen=True):
    seq: Seq
    expected_revision: Revision | None = None
