"""``cellar export-ipynb DIR [--user …]``: notebooks out as .ipynb files (SPEC §12).

Each notebook is written by the same code as ``GET /notebooks/{id}/ipynb``
(``app.ipynb.services.render``).  With ``--user`` (email or external id) its
notebooks go straight into ``DIR``; without, every user's go into
``DIR/<email, else external id, else user id>/``.  A file is named after its
notebook (``app.ipynb.filenames.file_name``: unsafe characters replaced);
notebooks of one name in one folder become ``name.ipynb``, ``name (2).ipynb``,
… in order of creation, so a re-run names them the same.

Notebooks are streamed from one server-side cursor inside a read-only
REPEATABLE READ transaction (one consistent snapshot, memory bounded by the
cursor's prefetch), and every file is written to a temporary file beside it
and renamed over it, so a reader never sees half a file.  Files of notebooks
deleted since an earlier export stay where they are.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

from app.database import connection
from app.ipynb.filenames import file_name, stem
from app.ipynb.importer import owner_id
from app.ipynb.services import render
from app.legacy.exporter import prepare_directory, write_atomically
from app.legacy.report import Counts, Report
from app.store import ipynb as store

if TYPE_CHECKING:
    from pathlib import Path

    from app.store.ipynb import IpynbRow

# Files are readable by others as the umask allows (notebooks hold no secrets).
FILE_MODE = 0o666


class IpynbExporter:
    def __init__(self, report: Report | None = None) -> None:
        self.report = report or Report()
        self.counts = Counts()

    async def run(self, directory: Path, *, user: str | None = None) -> Counts:
        self.counts = Counts()
        user_id = None if user is None else await owner_id(user, "--user")
        prepare_directory(directory)
        umask = os.umask(0)
        os.umask(umask)
        taken: dict[Path, set[str]] = {}
        async with (
            connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            self.report.start(await store.count(conn, user_id), "export-ipynb")
            try:
                async for owner, row in store.export_rows(conn, user_id):
                    folder = directory if user_id is not None else directory / stem(owner)
                    self._export(folder, taken.setdefault(folder, set()), row, FILE_MODE & ~umask)
                    self.report.advance()
            finally:
                self.report.finish()
        self.counts.elapsed = self.report.elapsed()
        return self.counts

    def _export(self, folder: Path, taken: set[str], row: IpynbRow, mode: int) -> None:
        name = file_name(row.name, taken)
        try:
            data = render(row)
        except (ValueError, TypeError, msgspec.DecodeError) as exc:
            self._failed(row.id, f"cannot be written as .ipynb: {exc}")
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(folder / name, data, mode)
        except OSError as exc:
            self._failed(row.id, f"cannot write {folder / name}: {exc.strerror or exc}")
            return
        self.counts.exported += 1

    def _failed(self, notebook_id: str, reason: str) -> None:
        self.counts.failed += 1
        self.report.line(f"failed {notebook_id}: {reason}")
