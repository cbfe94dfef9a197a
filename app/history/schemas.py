"""Bodies of the history routes (SPEC §11).

The events are the store's rows (``app.store.events.Event``), served as they
come: their ``data`` passes through as the stored JSON, never decoded.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.store.events import CellVersion, Event

# How many events one page of history holds at most, and by default.
MAX_HISTORY_LIMIT = 1000
DEFAULT_HISTORY_LIMIT = 100
# A seq is a PostgreSQL bigint.
MAX_SEQ = 2**63 - 1


class History(msgspec.Struct, frozen=True):
    events: Annotated[list[Event], msgspec.Meta(description="Oldest first.")]
    next_seq: Annotated[
        int,
        msgspec.Meta(
            description="Pass it as `since` for the next page: the last seq returned, "
            "or `since` when none."
        ),
    ]


class CellHistory(msgspec.Struct, frozen=True):
    versions: Annotated[
        list[CellVersion],
        msgspec.Meta(description="Newest first; a deleted cell's last version has code null."),
    ]


class Pruned(msgspec.Struct, frozen=True):
    """The 410 body: events after `since` were pruned; resume from `oldest_seq`."""

    status_code: int
    detail: str
    oldest_seq: int


class MergeConflict(msgspec.Struct, frozen=True):
    """A stale code edit that could not be merged: the events that touched the cell."""

    status_code: Annotated[int, msgspec.Meta(description="409 (`expected_revision`) or 412.")]
    detail: str
    revision: Annotated[int, msgspec.Meta(description="The notebook's current revision.")]
    conflicts: Annotated[
        list[Event],
        msgspec.Meta(
            description="The events after your revision that changed or deleted this cell "
            "(empty when that history was pruned)."
        ),
    ] = []
