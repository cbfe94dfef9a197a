"""``cellar import-legacy``: the legacy file store into PostgreSQL (SPEC §8).

The directory is streamed: file *names* are listed and sorted (so runs are
reproducible), contents are read one file at a time by a producer and handed
to a few worker tasks in batches bounded by count and by bytes, through a
bounded queue: only the names are held for the whole run, so memory does not
grow with the size of the store.

Each batch costs a handful of set-based statements (``unnest`` arrays), not a
round trip per notebook:

1. read what the database holds for the batch's ids (notebooks and their runs);
2. compare every file with it (``format.differences``): equal → unchanged, no
   write at all, revision untouched; different → update; absent → insert;
3. resolve the owners of new notebooks, creating missing users in one
   statement (``INSERT … ON CONFLICT DO NOTHING``);
4. write inserts, updates, cell runs and ``provisioned_at`` in one transaction.

A file is never split across transactions.  When a batch's transaction fails
(a race with a live server, a value PostgreSQL rejects), it is rolled back and
its files are replayed one transaction each, so only the offending file fails
and the run goes on.  Connection-level errors stop the run instead: nothing
would succeed after them.

While the producer decodes the next files, the workers' statements run in
PostgreSQL: the two overlap on a multi-core machine.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

import asyncpg
import msgspec

from app.database import connection, transaction
from app.legacy.format import (
    MAX_ID_LENGTH,
    UNDECRYPTABLE,
    Difference,
    FormatError,
    LegacyError,
    LegacyNotebook,
    Limits,
    StoredNotebook,
    analysis_differences,
    differences,
    has_run_state,
    kind_of,
    owner_of,
    read_notebook,
    special_prefix,
)
from app.legacy.report import Counts, Report
from app.notebooks.cells import ENCODE, make_cell
from app.notebooks.schemas import StoredCell
from app.observability.metrics import count_legacy_import
from app.store import legacy, notebooks, users
from app.store.legacy import CellRun, LegacyRow
from app.store.notebooks import SPECIAL_KIND_INDEX, NewNotebook, NotebookKind, RunState

if TYPE_CHECKING:
    from pathlib import Path
    from uuid import UUID

    from app.notebooks.connections import ConnectionStringCipher
    from app.settings import Settings


class Mode(StrEnum):
    IMPORT = "import"
    DRY_RUN = "dry run"
    VERIFY = "verify"


_CELLS = msgspec.json.Decoder(list[StoredCell])


def list_files(directory: Path) -> list[str]:
    """Sorted names of the ``*.json`` files (hidden files and temp files left aside)."""
    try:
        with os.scandir(directory) as entries:
            return sorted(
                entry.name
                for entry in entries
                if entry.name.endswith(".json")
                and not entry.name.startswith(".")
                and entry.is_file()
            )
    except FileNotFoundError:
        raise LegacyError(f"{directory}: no such directory") from None
    except NotADirectoryError:
        raise LegacyError(f"{directory}: not a directory") from None
    except PermissionError:
        raise LegacyError(f"{directory}: permission denied") from None


def check_external_id(value: str, option: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise LegacyError(f"{option}: expected an external id of 1 to {MAX_ID_LENGTH} characters")
    return value


@dataclass(slots=True)
class _Item:
    """One decoded, checked file on its way to the database."""

    file: str
    notebook: LegacyNotebook
    owner: str
    size: int


class _Existing(NamedTuple):
    user_id: UUID
    token: str | None
    state: StoredNotebook


@dataclass(slots=True)
class _Row:
    """One notebook ready to write: an insert (``new``) or an update listing its ``changes``."""

    item: _Item
    new: bool
    user_id: UUID | None  # None only in a dry run, for an owner that would be created
    kind: NotebookKind
    token: str | None
    cells: str
    runs: list[CellRun]
    changes: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def notebook(self) -> NewNotebook:
        """The notebook to write: inserted when new, else its contents replace the stored ones."""
        notebook = self.item.notebook
        assert self.user_id is not None  # only a dry run lacks an owner's id, and writes nothing
        return NewNotebook(
            id=notebook.id,
            user_id=self.user_id,
            name=notebook.name,
            kind=self.kind,
            db_conn_string=self.token,
            revision=notebook.revision,
            cells=self.cells,
            demo_version=None,
        )


class LegacyImporter:
    """Imports, dry-runs or verifies a directory of legacy files against the database."""

    def __init__(
        self,
        settings: Settings,
        cipher: ConnectionStringCipher,
        report: Report | None = None,
        *,
        batch_files: int = 100,
        batch_bytes: int = 8 * 1024 * 1024,
        workers: int = 3,
    ) -> None:
        self.cipher = cipher
        self.limits = Limits.from_settings(settings)
        self.report = report or Report()
        self.batch_files = batch_files
        self.batch_bytes = batch_bytes
        self.workers = workers
        self.counts = Counts()
        self._would_create: set[str] = set()  # dry run: owners counted as "would create"

    async def run(
        self, directory: Path, *, mode: Mode = Mode.IMPORT, default_owner: str | None = None
    ) -> Counts:
        if default_owner is not None:
            default_owner = check_external_id(default_owner, "--default-owner")
        names = list_files(directory)
        self.counts = Counts()
        self._would_create = set()
        self.report.start(len(names), "import" if mode is Mode.IMPORT else str(mode))
        queue: asyncio.Queue[list[_Item] | None] = asyncio.Queue(maxsize=self.workers)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.workers):
                    group.create_task(self._work(queue, mode))
                group.create_task(self._produce(directory, names, queue, default_owner))
        except BaseExceptionGroup as failure:
            raise failure.exceptions[0] from None
        finally:
            self.report.finish()
        self.counts.elapsed = self.report.elapsed()
        count_legacy_import(self.counts, mode)  # cellar_imports_total (docs/operations.md)
        return self.counts

    # -- reading files ---------------------------------------------------------------

    async def _produce(
        self,
        directory: Path,
        names: list[str],
        queue: asyncio.Queue[list[_Item] | None],
        default_owner: str | None,
    ) -> None:
        batch: list[_Item] = []
        size = 0
        for name in names:
            item = self._read(directory, name, default_owner)
            if item is not None:
                batch.append(item)
                size += item.size
            if len(batch) >= self.batch_files or size >= self.batch_bytes:
                await queue.put(batch)
                batch, size = [], 0
            else:
                await asyncio.sleep(0)  # let the workers' I/O proceed between files
        if batch:
            await queue.put(batch)
        for _ in range(self.workers):
            await queue.put(None)

    def _read(self, directory: Path, name: str, default_owner: str | None) -> _Item | None:
        try:
            data = (directory / name).read_bytes()
        except OSError as exc:
            self._failed(name, f"cannot read the file: {exc.strerror or exc}")
            return None
        try:
            notebook = read_notebook(data, name.removesuffix(".json"), self.limits)
        except FormatError as exc:
            self._failed(name, str(exc))
            return None
        owner = owner_of(notebook, default_owner)
        if owner is None:
            self.counts.skipped += 1
            self.report.line(
                f"skipped {name}: no owner (no user_id, the id is not demo-<user> or "
                "blank-<user>, and no --default-owner)"
            )
            self.report.advance()
            return None
        return _Item(name, notebook, owner, len(data))

    def _failed(self, name: str, reason: str) -> None:
        self.counts.failed += 1
        self.report.line(f"failed {name}: {reason}")
        self.report.advance()

    def _note(self, name: str, text: str) -> None:
        self.counts.notes += 1
        self.report.line(f"note {name}: {text}")

    # -- one batch ---------------------------------------------------------------------

    async def _work(self, queue: asyncio.Queue[list[_Item] | None], mode: Mode) -> None:
        while (batch := await queue.get()) is not None:
            await self._process(batch, mode)
            self.report.advance(len(batch))

    async def _process(self, batch: list[_Item], mode: Mode) -> None:
        async with connection() as conn:
            rows = await legacy.by_id(conn, [item.notebook.id for item in batch])
        stored = {row.id: self._existing(row) for row in rows}
        if mode is Mode.VERIFY:
            self._verify(batch, stored)
            return
        new: list[_Item] = []
        changed: list[tuple[_Item, _Existing, list[Difference]]] = []
        for item in batch:
            existing = stored.get(item.notebook.id)
            if existing is None:
                new.append(item)
                continue
            changes = differences(item.notebook, item.owner, existing.state)
            if not changes:
                self.counts.unchanged += 1
            elif existing.state.owner != item.owner:
                self._failed_in_batch(
                    item.file,
                    f"notebook {item.notebook.id!r} belongs to another user "
                    f"({existing.state.owner or 'one without external id'}); not moved",
                )
            else:
                changed.append((item, existing, changes))
        prepared: list[_Row] = []
        if new:
            owners = await self._owners(sorted({item.owner for item in new}), mode)
            kinds = await self._kinds(new)
            for item in new:
                prepared.append(
                    self._prepare(item, owners[item.owner], kinds[item.notebook.id], None)
                )
        for item, existing, changes in changed:
            prepared.append(self._prepare(item, existing.user_id, "user", existing, changes))
        if mode is Mode.IMPORT and prepared:
            prepared = await self._write_batch(prepared)
        for row in prepared:
            self._done(row, mode)

    def _failed_in_batch(self, name: str, reason: str) -> None:
        """A failure found by a worker: counted and reported; progress moves with the batch."""
        self.counts.failed += 1
        self.report.line(f"failed {name}: {reason}")

    def _done(self, row: _Row, mode: Mode) -> None:
        would = "would " if mode is Mode.DRY_RUN else ""
        for note in row.notes:
            self._note(row.item.file, note)
        if row.new:
            self.counts.imported += 1
        else:
            self.counts.updated += 1
            fields = ", ".join(
                change.field if change.cell_id is None else f"{change.cell_id}.{change.field}"
                for change in row.changes
            )
            self.report.line(f"{would}update {row.item.file}: {_clip(fields, 200)}")

    def _existing(self, row: LegacyRow) -> _Existing:
        token = row.db_conn_string
        clear = None if token is None else self.cipher.decrypt(token)
        state = StoredNotebook(
            id=row.id,
            owner=row.owner,
            name=row.name,
            db_conn_string=UNDECRYPTABLE if token is not None and clear is None else clear,
            revision=row.revision,
            cells=_CELLS.decode(row.cells),
            runs={run.cell_id: run for run in row.runs},
        )
        return _Existing(row.user_id, token, state)

    async def _owners(self, external_ids: list[str], mode: Mode) -> dict[str, UUID | None]:
        """User ids by external id; a real import creates the missing users in one statement."""
        found: dict[str, UUID | None] = dict.fromkeys(external_ids)
        async with connection() as conn:
            if mode is Mode.IMPORT:
                for user in await users.ensure_external(conn, external_ids):
                    found[user.external_id] = user.id
                    self.counts.users_created += user.created
                if any(value is None for value in found.values()):
                    # Created by someone else after this statement's snapshot.
                    for user in await users.by_external_id(conn, external_ids):
                        found[user.external_id] = user.id
            else:
                for user in await users.by_external_id(conn, external_ids):
                    found[user.external_id] = user.id
                unknown = {owner for owner, value in found.items() if value is None}
                self.counts.users_created += len(unknown - self._would_create)
                self._would_create |= unknown
        return found

    async def _kinds(self, items: list[_Item]) -> dict[str, NotebookKind]:
        """``demo``/``blank`` for ``demo-<owner>``/``blank-<owner>``; else ``user``, noted.

        An owner who already has a notebook of that kind under another id (the
        app provisioned them before the import) keeps it; the file comes in as
        ``user``.  Ids are unique in a directory, so two files never compete.
        """
        kinds: dict[str, NotebookKind] = {}
        for item in items:
            kind = kinds[item.notebook.id] = kind_of(item.notebook.id, item.owner)
            prefix = special_prefix(item.notebook.id)
            if kind == "user" and prefix is not None:
                self._note(
                    item.file,
                    f"imported as kind user: the id is not {prefix}<owner> for its owner "
                    f"{item.owner!r}",
                )
        special = [item for item in items if kinds[item.notebook.id] != "user"]
        if not special:
            return kinds
        async with connection() as conn:
            held = await legacy.special_notebooks(conn, sorted({item.owner for item in special}))
        taken = {(notebook.owner, notebook.kind): notebook.id for notebook in held}
        for item in special:
            kind = kinds[item.notebook.id]
            holder = taken.get((item.owner, kind))
            if holder is None or holder == item.notebook.id:
                continue
            kinds[item.notebook.id] = "user"
            self._note(
                item.file,
                f"imported as kind user: owner {item.owner!r} already has a {kind} "
                f"notebook ({holder!r})",
            )
        return kinds

    def _prepare(
        self,
        item: _Item,
        user_id: UUID | None,
        kind: NotebookKind,
        existing: _Existing | None,
        changes: list[Difference] | None = None,
    ) -> _Row:
        """Server-side analysis, encryption and encoding of one notebook."""
        notebook = item.notebook
        cells = []
        notes = []
        for cell in notebook.cells:
            stored = make_cell(cell.type, cell.code, cell.id, cell.metadata)
            cells.append(stored)
            for difference in analysis_differences(notebook.id, cell, stored):
                notes.append(f"recomputed {difference.describe(theirs='server')}")
        clear = notebook.db_conn_string
        if existing is not None and existing.state.db_conn_string == clear:
            token = existing.token  # unchanged: keep the stored token
        else:
            token = None if clear is None else self.cipher.encrypt(clear)
        runs = [
            CellRun(
                notebook.id,
                RunState(c.id, c.status, c.stdout, bytes(c.outputs).decode("utf-8"), c.error),
            )
            for c in notebook.cells
            if has_run_state(c)
        ]
        return _Row(
            item=item,
            new=existing is None,
            user_id=user_id,
            kind=kind,
            token=token,
            cells=ENCODE(cells).decode(),
            runs=runs,
            changes=changes or [],
            notes=notes,
        )

    # -- writing ------------------------------------------------------------------------

    async def _write_batch(self, rows: list[_Row]) -> list[_Row]:
        """Write a batch in one transaction; on failure, one transaction per file.

        Returns the rows that were written.
        """
        try:
            await self._write(rows)
        except Exception as exc:
            if _fatal(exc):
                raise
            if len(rows) == 1:
                self._write_failed(rows[0], exc)
                return []
        else:
            return rows
        kept = []
        for row in rows:
            try:
                await self._write([row])
            except Exception as exc:
                if _fatal(exc):
                    raise
                self._write_failed(row, exc)
            else:
                kept.append(row)
        return kept

    def _write_failed(self, row: _Row, exc: Exception) -> None:
        if isinstance(exc, asyncpg.UniqueViolationError) and (
            exc.constraint_name == SPECIAL_KIND_INDEX
        ):
            reason = (
                f"owner {row.item.owner!r} got a {row.kind} notebook meanwhile "
                "(a concurrent first login?); run the import again"
            )
        elif isinstance(exc, _Moved):
            reason = f"{exc}; run the import again"
        else:
            reason = f"database refused it: {type(exc).__name__}: {exc}"
        self._failed_in_batch(row.item.file, _clip(reason, 300))

    async def _write(self, rows: list[_Row]) -> None:
        new = [row for row in rows if row.new]
        changed = [row for row in rows if not row.new]
        runs = [run for row in rows for run in row.runs]
        provisioned = sorted({row.user_id for row in new if row.kind != "user" and row.user_id})
        async with transaction() as conn:
            if new:
                await notebooks.insert(conn, [row.notebook() for row in new], "import", "import")
            if changed:
                found = await legacy.replace(conn, [row.notebook() for row in changed])
                if len(found) != len(changed):
                    raise _Moved("a notebook was deleted or moved to another user meanwhile")
                await legacy.delete_runs(conn, found)
            await legacy.insert_runs(conn, runs)
            if provisioned:
                await users.mark_provisioned(conn, provisioned)

    # -- verify ---------------------------------------------------------------------------

    def _verify(self, batch: list[_Item], stored: dict[str, _Existing]) -> None:
        for item in batch:
            notebook = item.notebook
            existing = stored.get(notebook.id)
            if existing is None:
                self.counts.missing += 1
                self.report.line(f"{notebook.id} - notebook: file=present db=missing")
                continue
            found = differences(notebook, item.owner, existing.state)
            for line in found:
                self.report.line(line.describe())
            db_cells = {cell.id: cell for cell in existing.state.cells}
            for cell in notebook.cells:
                db_cell = db_cells.get(cell.id)
                if db_cell is not None:
                    for difference in analysis_differences(notebook.id, cell, db_cell):
                        self._note(item.file, f"recomputed {difference.describe()}")
            if found:
                self.counts.differ += 1
            else:
                self.counts.unchanged += 1


class _Moved(Exception):
    """An update found fewer rows than it expected."""


def _fatal(exc: BaseException) -> bool:
    """Errors after which no statement can succeed: stop the run rather than fail every file."""
    if isinstance(exc, asyncpg.DataError):
        return False
    return isinstance(
        exc, (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
    ) or not isinstance(exc, (asyncpg.PostgresError, _Moved, ValueError))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(counts: Counts, mode: Mode) -> str:
    """The closing line: every count, the time and the rate."""
    timing = f"in {counts.elapsed:.2f} s ({counts.rate:.0f} notebooks/s)"
    if mode is Mode.VERIFY:
        return (
            f"verify: {counts.processed} files: {counts.unchanged} match, {counts.differ} differ, "
            f"{counts.missing} missing, {counts.skipped} skipped, {counts.failed} failed "
            f"{timing}"
        )
    if mode is Mode.DRY_RUN:
        new, update, create = "would import", "would update", "would create"
    else:
        new, update, create = "imported", "updated", "created"
    line = (
        f"{new} {counts.imported}, {update} {counts.updated}, unchanged {counts.unchanged}, "
        f"skipped {counts.skipped}, failed {counts.failed} {timing}"
    )
    if counts.users_created:
        line += f"; {create} {counts.users_created} users"
    if mode is Mode.DRY_RUN:
        return "dry run, nothing written: " + line
    if counts.imported == counts.updated == 0 and counts.failed == 0:
        line += "; nothing to change"
    return line


def failure(counts: Counts, mode: Mode) -> str | None:
    """Why the run exits non-zero, or None: failed files, and for --verify any difference."""
    if mode is Mode.VERIFY and (counts.differ or counts.missing or counts.failed):
        return (
            f"verify found {counts.differ} notebooks that differ, {counts.missing} missing, "
            f"{counts.failed} files failed"
        )
    if counts.failed:
        return f"{counts.failed} of {counts.processed} files failed"
    return None
