"""``cellar export-legacy``: the database back into the legacy file store (SPEC §8).

This is the rollback path, so the files are what the legacy app reads:
``db_conn_string`` in clear (decrypted with ``ENCRYPTION_KEY``), ``user_id``
the owner's external id, every cell with its run state.  Notebooks are
streamed from one server-side cursor inside a read-only REPEATABLE READ
transaction: one consistent snapshot, one query for the whole export (the
cells' run state is aggregated per notebook in it, outputs passed through as
stored, never decoded), and memory bounded by the cursor's prefetch.  Each
``{id}.json`` is written to a temporary file in the same directory and
renamed over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import TYPE_CHECKING

import msgspec

from app.database import connection
from app.legacy.format import (
    ExportNotebook,
    LegacyError,
    RunState,
    encode_export,
    export_cell,
    is_safe_file_stem,
)
from app.legacy.report import Counts, Report
from app.notebooks.schemas import StoredCell

if TYPE_CHECKING:
    from pathlib import Path

    import asyncpg

    from app.notebooks.connections import ConnectionStringCipher

_CELLS = msgspec.json.Decoder(list[StoredCell])
_RUNS = msgspec.json.Decoder(list[tuple[str, str, str, msgspec.Raw, str | None]])

_SELECT = """
SELECT n.id, u.external_id, n.name, n.db_conn_string, n.revision, n.cells,
       (SELECT json_agg(json_build_array(r.cell_id, r.status, r.stdout, r.outputs, r.error))
          FROM cell_runs r WHERE r.notebook_id = n.id) AS runs
  FROM notebooks n JOIN users u ON u.id = n.user_id
"""
_ALL = _SELECT + " ORDER BY n.id"
_OF_USER = _SELECT + " WHERE u.external_id = $1 ORDER BY n.id"
_COUNT_ALL = "SELECT count(*) FROM notebooks"
_COUNT_OF_USER = (
    "SELECT count(*) FROM notebooks n JOIN users u ON u.id = n.user_id WHERE u.external_id = $1"
)
_USER_EXISTS = "SELECT EXISTS (SELECT 1 FROM users WHERE external_id = $1)"
PREFETCH = 50


class LegacyExporter:
    def __init__(self, cipher: ConnectionStringCipher, report: Report | None = None) -> None:
        self.cipher = cipher
        self.report = report or Report()
        self.counts = Counts()

    async def run(self, directory: Path, *, user: str | None = None) -> Counts:
        """Write every notebook (or ``user``'s) as ``DIR/{id}.json``."""
        self.counts = Counts()
        prepare_directory(directory)
        async with (
            connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            if user is not None:
                if not await conn.fetchval(_USER_EXISTS, user):
                    raise LegacyError(f"--user: no user with external id {user!r}")
                total = await conn.fetchval(_COUNT_OF_USER, user)
                cursor = conn.cursor(_OF_USER, user, prefetch=PREFETCH)
            else:
                total = await conn.fetchval(_COUNT_ALL)
                cursor = conn.cursor(_ALL, prefetch=PREFETCH)
            self.report.start(int(total), "export")
            try:
                async for row in cursor:
                    self._export(directory, row)
                    self.report.advance()
            finally:
                self.report.finish()
        self.counts.elapsed = self.report.elapsed()
        return self.counts

    def _export(self, directory: Path, record: asyncpg.Record) -> None:
        notebook_id: str = record["id"]
        if not is_safe_file_stem(notebook_id):
            self._failed(notebook_id, "the id cannot be used as a file name")
            return
        token = record["db_conn_string"]
        clear = None if token is None else self.cipher.decrypt(token)
        if token is not None and clear is None:
            self._failed(notebook_id, "db_conn_string cannot be decrypted with this ENCRYPTION_KEY")
            return
        runs = {
            cell_id: RunState(status, stdout, bytes(outputs), error)
            for cell_id, status, stdout, outputs, error in (
                _RUNS.decode(record["runs"]) if record["runs"] else []
            )
        }
        notebook = ExportNotebook(
            id=notebook_id,
            user_id=record["external_id"],
            name=record["name"],
            db_conn_string=clear,
            revision=record["revision"],
            cells=[export_cell(cell, runs.get(cell.id)) for cell in _CELLS.decode(record["cells"])],
        )
        try:
            write_atomically(directory / f"{notebook_id}.json", encode_export(notebook))
        except OSError as exc:
            self._failed(notebook_id, f"cannot write: {exc.strerror or exc}")
            return
        self.counts.exported += 1
        if record["external_id"] is None:
            self.counts.notes += 1
            self.report.line(
                f"note {notebook_id}.json: written without user_id (its owner has no external "
                "id); importing it back needs --default-owner"
            )

    def _failed(self, notebook_id: str, reason: str) -> None:
        self.counts.failed += 1
        self.report.line(f"failed {notebook_id}: {reason}")


def prepare_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise LegacyError(f"{directory}: not a directory") from None
    except OSError as exc:
        raise LegacyError(f"{directory}: cannot create: {exc.strerror or exc}") from None


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a hidden temporary file beside ``path``, then rename it over ``path``."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:  # mode 0600: the file holds secrets in clear
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def summary(counts: Counts, directory: Path) -> str:
    return (
        f"exported {counts.exported} notebooks to {directory}, failed {counts.failed} "
        f"in {counts.elapsed:.2f} s ({counts.rate:.0f} notebooks/s)"
    )
