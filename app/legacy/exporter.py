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
    encode_export,
    export_cell,
    is_safe_file_stem,
)
from app.legacy.report import Counts, Report
from app.notebooks.schemas import StoredCell
from app.store import legacy, users

if TYPE_CHECKING:
    from pathlib import Path

    from app.notebooks.connections import ConnectionStringCipher
    from app.store.legacy import LegacyRow

_CELLS = msgspec.json.Decoder(list[StoredCell])


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
            if user is not None and not await users.external_id_exists(conn, user):
                raise LegacyError(f"--user: no user with external id {user!r}")
            self.report.start(await legacy.count(conn, user), "export")
            try:
                async for row in legacy.export_rows(conn, user):
                    self._export(directory, row)
                    self.report.advance()
            finally:
                self.report.finish()
        self.counts.elapsed = self.report.elapsed()
        return self.counts

    def _export(self, directory: Path, row: LegacyRow) -> None:
        notebook_id = row.id
        if not is_safe_file_stem(notebook_id):
            self._failed(notebook_id, "the id cannot be used as a file name")
            return
        token = row.db_conn_string
        clear = None if token is None else self.cipher.decrypt(token)
        if token is not None and clear is None:
            self._failed(notebook_id, "db_conn_string cannot be decrypted with this ENCRYPTION_KEY")
            return
        runs = {run.cell_id: run for run in row.runs}
        notebook = ExportNotebook(
            id=notebook_id,
            user_id=row.owner,
            name=row.name,
            db_conn_string=clear,
            revision=row.revision,
            cells=[export_cell(cell, runs.get(cell.id)) for cell in _CELLS.decode(row.cells)],
        )
        try:
            write_atomically(directory / f"{notebook_id}.json", encode_export(notebook))
        except OSError as exc:
            self._failed(notebook_id, f"cannot write: {exc.strerror or exc}")
            return
        self.counts.exported += 1
        if row.owner is None:
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


def write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a hidden temporary file beside ``path``, then rename it over ``path``.

    The file's mode is 0600 (legacy files hold secrets in clear) unless ``mode`` is given.
    """
    # The temporary name must fit where the final one does (255 bytes): a bounded prefix.
    start = path.name.encode()[:64].decode(errors="ignore")
    fd, temporary = tempfile.mkstemp(prefix=f".{start}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
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
