"""Realtime tickets (SPEC §11): one row per ticket an ``EventSource`` may redeem once.

A browser's ``EventSource`` cannot send an ``Authorization`` header, so
``POST /notebooks/{id}/events/ticket`` gives a ticket for ``?ticket=``:
single use, 60 seconds, that notebook and that user only.  It lives here,
not in a process's memory, so that any instance accepts it.

- ``ticket_hash``: the SHA-256 of the ticket; the table never holds a
  ticket that could be used, the client alone has it.
- ``user_id`` (the owner, SPEC §15) and ``notebook_id``, each cascading:
  a ticket dies with its user or notebook.
- ``expires_at``: redeeming checks it; ``realtime_tickets_expires_at``
  lets each new ticket delete the expired ones by an index range.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T01:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "realtime: the tickets table"

FORWARDS = [
    """
    CREATE TABLE realtime_tickets (
        ticket_hash bytea PRIMARY KEY CHECK (octet_length(ticket_hash) = 32),
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        notebook_id text NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
        expires_at timestamptz NOT NULL
    )
    """,
    "CREATE INDEX realtime_tickets_expires_at ON realtime_tickets (expires_at)",
    "CREATE INDEX realtime_tickets_notebook ON realtime_tickets (notebook_id)",
]

BACKWARDS = ["DROP TABLE realtime_tickets"]


async def _run_all(statements: list[str]) -> None:
    engine = engine_finder()
    assert engine is not None
    for statement in statements:
        await engine.run_ddl(statement)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="cellar", description=DESCRIPTION)

    async def run_forwards():
        await _run_all(FORWARDS)

    async def run_backwards():
        await _run_all(BACKWARDS)

    manager.add_raw(run_forwards)
    manager.add_raw_backwards(run_backwards)
    return manager
