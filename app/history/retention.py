"""Retention of the event log (SPEC §11): ``cellar prune-history`` and the daily run
(``app.system.daily``: one instance at a time, under an advisory lock).

Events older than ``HISTORY_RETENTION_DAYS`` go, but every notebook keeps at
least its last ``HISTORY_KEEP_LAST``.  The work goes in batches of notebooks
(by id), each batch its own short transaction: the service keeps serving,
and no notebook's row is locked (the delete touches ``notebook_events``
only; a writer appending to a notebook being pruned waits for nothing).  A
client whose ``since`` falls before what is kept gets 410 with the oldest
seq kept (``app.history.services``).
"""

from __future__ import annotations

from app.database import transaction
from app.store import events

# Notebooks per transaction: each costs a few index probes; a batch stays well under a second.
BATCH = 500


async def prune_history(days: int, keep_last: int, batch: int = BATCH) -> int:
    """Remove the expired events of every notebook; how many went."""
    total, after = 0, ""
    while True:
        async with transaction() as conn:
            deleted, last = await events.prune(conn, days, keep_last, after, batch)
        total += deleted
        if last is None:
            return total
        after = last


def summary(deleted: int, days: int, keep_last: int) -> str:
    return (
        f"pruned {deleted} events older than {days} days "
        f"(the last {keep_last} of each notebook kept)"
    )
