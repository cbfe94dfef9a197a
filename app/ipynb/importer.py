"""``cellar import-ipynb PATH… --owner …``: .ipynb files into one user's notebooks (SPEC §12).

Files are imported by the same service as ``POST /notebooks/import``
(``IpynbService``: the same repairs, refusals and limits), one transaction
per file.  A folder is searched recursively for ``*.ipynb``, leaving out
hidden files and folders (Jupyter's ``.ipynb_checkpoints``, ``.git``).

A notebook is named after its file (``sales.ipynb`` → "sales"), as
Jupyter names it, where the route takes ``?name=``; ``cellar export-ipynb``
names files after notebooks, so names survive the way out and back.

Re-running is idempotent by content: each notebook keeps the SHA-256 of
the name and bytes it was imported from (``services.import_key``), and a
file the owner has imported before is ``unchanged`` (nothing written).  A
changed file is a new notebook (the earlier one stays as the user left it);
copies of one file under other names are notebooks of their own.  The
owner's keys are read once up front, so a re-run parses no file; a unique
index on (owner, key) decides between two runs at once, so a file is
imported once.

The producer reads and prepares one file at a time (CPU: nbformat's read
and validation, the analysis) and hands it to a few workers that write it,
so the database's work overlaps the next file's parsing, as in the legacy
import.  A file that cannot be read or imported is reported and counted, and
the run goes on; errors after which nothing could succeed (the connection
is gone) stop it.  Progress and the closing summary are ``app.legacy.report``'s.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from app.database import connection
from app.errors import InvalidInput
from app.ipynb.services import DEFAULT_NAME, import_key
from app.legacy.report import Counts, Report
from app.observability.metrics import count_ipynb_import
from app.store import ipynb as store
from app.store import users

if TYPE_CHECKING:
    from collections.abc import Sequence
    from uuid import UUID

    from app.ipynb.services import IpynbService, Prepared

SUFFIX = ".ipynb"


class FilesError(Exception):
    """The run cannot start (no such owner, an unreadable folder); reported in one line."""


@dataclass(frozen=True, slots=True)
class _Item:
    shown: str  # the path as the operator gave it (or found under a folder they gave)
    prepared: Prepared


def find_files(paths: Sequence[Path]) -> list[Path]:
    """Files given, and every ``*.ipynb`` under folders given (sorted, hidden ones left out).

    A file named twice (or found twice) is listed once.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            candidates = sorted(_walk(path))
        elif path.exists():
            candidates = [path]
        else:
            raise FilesError(f"{path}: no such file or directory")
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


def _walk(folder: Path) -> list[Path]:
    files: list[Path] = []
    try:
        for root, directories, names in os.walk(folder, onerror=_raise):
            directories[:] = [d for d in directories if not d.startswith(".")]
            files.extend(
                Path(root, name)
                for name in names
                if name.endswith(SUFFIX) and not name.startswith(".")
            )
    except OSError as exc:
        raise FilesError(f"{exc.filename or folder}: {exc.strerror or exc}") from None
    return [path for path in files if path.is_file()]


def _raise(error: OSError) -> None:
    raise error


async def owner_id(email_or_external_id: str, option: str = "--owner") -> UUID:
    """The one user with this email or external id, else ``FilesError``."""
    value = email_or_external_id.strip()
    if not value or "\x00" in value:
        raise FilesError(f"{option}: expected an email or an external id")
    async with connection() as conn:
        found = await users.owners(conn, value)
    if not found:
        raise FilesError(f"{option}: no user with email or external id {value!r}")
    if len(found) > 1:
        raise FilesError(
            f"{option}: {value!r} is one user's email and another's external id; "
            "name the user by the other one"
        )
    return found[0].id


class IpynbImporter:
    def __init__(
        self, service: IpynbService, report: Report | None = None, *, workers: int = 3
    ) -> None:
        self.service = service
        self.report = report or Report()
        self.workers = workers
        self.counts = Counts()

    async def run(self, paths: Sequence[Path], owner: str) -> Counts:
        user_id = await owner_id(owner)
        files = find_files(paths)
        async with connection() as conn:
            known = set(await store.imported_hashes(conn, user_id))
        self.counts = Counts()
        self.report.start(len(files), "import-ipynb")
        queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=2 * self.workers)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.workers):
                    group.create_task(self._work(queue, user_id))
                group.create_task(self._produce(files, known, queue))
        except BaseExceptionGroup as failure:
            raise failure.exceptions[0] from None
        finally:
            self.report.finish()
            self.counts.elapsed = self.report.elapsed()
            for outcome in ("imported", "unchanged", "failed"):
                count_ipynb_import(outcome, getattr(self.counts, outcome))
        return self.counts

    async def _produce(
        self, files: list[Path], known: set[str], queue: asyncio.Queue[_Item | None]
    ) -> None:
        for path in files:
            shown = str(path)
            try:
                data = path.read_bytes()
            except OSError as exc:
                self._failed(shown, f"cannot read the file: {exc.strerror or exc}")
                continue
            name = path.name.removesuffix(SUFFIX)[: self.service.settings.max_name_length]
            name = name or DEFAULT_NAME
            key = import_key(name, data)
            if key in known:
                self._unchanged()
                continue
            known.add(key)  # the same file again in this run: the insert skips it
            try:
                prepared = self.service.prepare(data, name, key=key)
            except InvalidInput as exc:
                self._failed(shown, exc.detail)
                continue
            await queue.put(_Item(shown, prepared))
            await asyncio.sleep(0)  # let the workers' I/O proceed between files
        for _ in range(self.workers):
            await queue.put(None)

    async def _work(self, queue: asyncio.Queue[_Item | None], user_id: UUID) -> None:
        while (item := await queue.get()) is not None:
            try:
                revision = await self.service.store(user_id, item.prepared)
            except asyncpg.PostgresError as exc:
                if isinstance(
                    exc, asyncpg.PostgresConnectionError | asyncpg.OperatorInterventionError
                ):
                    raise  # nothing after it could succeed: stop the run
                self._failed(item.shown, f"database refused it: {type(exc).__name__}: {exc}")
                continue
            if revision is None:
                self._unchanged()
                continue
            self.counts.imported += 1
            if item.prepared.warnings:
                self._note(item.shown, item.prepared.warnings)
            self.report.advance()

    def _unchanged(self) -> None:
        self.counts.unchanged += 1
        self.report.advance()

    def _failed(self, shown: str, reason: str) -> None:
        self.counts.failed += 1
        self.report.line(f"failed {shown}: {_clip(reason, 300)}")
        self.report.advance()

    def _note(self, shown: str, warnings: list[str]) -> None:
        self.counts.notes += 1
        noun = "repair" if len(warnings) == 1 else "repairs"
        self.report.line(f"note {shown}: {len(warnings)} {noun}: {_clip('; '.join(warnings), 300)}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(counts: Counts) -> str:
    """The closing line: every count, the time and the rate."""
    line = (
        f"imported {counts.imported}, unchanged {counts.unchanged} (imported before), "
        f"failed {counts.failed} in {counts.elapsed:.2f} s ({counts.rate:.0f} notebooks/s)"
    )
    if counts.imported == 0 and counts.failed == 0:
        line += "; nothing to import"
    return line


def failure(counts: Counts) -> str | None:
    """Why the run exits non-zero (some file failed), or None."""
    if counts.failed:
        return f"{counts.failed} of {counts.processed} files failed"
    return None
