""".ipynb use cases (SPEC §12): import a file as a new notebook, export one as a file.

The routes and the CLI (``cellar import-ipynb``, ``cellar export-ipynb``)
call this service, so both refuse the same documents with the same messages
and store the same rows.  Each use case has a CPU half and a database half:

* ``prepare`` reads the bytes (``app.ipynb.convert``: nbformat reads,
  upgrades, repairs and validates), applies §3's limits (413 naming the
  limit) and encodes every piece for storage; ``store`` writes it in one
  transaction (``app.store.ipynb.insert_imported``: the notebook row and its
  run rows, one statement).  The CLI runs the two halves in different tasks
  so that parsing the next file overlaps the database's work on this one.
* ``export`` reads the notebook with its run records in one statement and
  ``render`` writes it with nbformat's writer; the result is kept
  (``app.ipynb.cache``) for as long as the notebook stays as it was.

Reading or writing a notebook of megabytes takes tens of milliseconds of
pure Python; above ``THREAD_BYTES`` it runs in a worker thread so the event
loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, uuid4

import msgspec

from app.database import connection
from app.errors import InvalidInput, NotFound, PayloadTooLarge
from app.ipynb.cache import ExportCache
from app.ipynb.convert import export_ipynb, import_ipynb
from app.ipynb.reading import IpynbError
from app.ipynb.schemas import IpynbImported, IpynbNotebookExtra
from app.notebooks.cells import ENCODE
from app.notebooks.schemas import StoredCell
from app.observability.metrics import count_ipynb_import
from app.store import ipynb as store
from app.store.ipynb import ImportedNotebook, IpynbRow
from app.store.notebooks import RunState

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.settings import Settings

__all__ = ["Exported", "IpynbService", "Prepared", "render"]

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_NAME = "Untitled"
# Above this many bytes, reading or writing a notebook runs in a worker thread.
THREAD_BYTES = 1024 * 1024

_CELLS = msgspec.json.Decoder(list[StoredCell])
_EXTRA = msgspec.json.Decoder(IpynbNotebookExtra)


class Prepared(msgspec.Struct, frozen=True):
    """An .ipynb read, checked against the limits and encoded: ready for one transaction."""

    notebook_id: str
    name: str
    cells: str  # JSON text of list[StoredCell]
    extra: str  # JSON text of IpynbNotebookExtra
    key: str | None  # import_key, for cellar import-ipynb
    runs: list[RunState]
    warnings: list[str]

    def row(self, user_id: UUID) -> ImportedNotebook:
        return ImportedNotebook(
            id=self.notebook_id,
            user_id=user_id,
            name=self.name,
            kind="user",
            db_conn_string=None,
            revision=0,
            cells=self.cells,
            demo_version=None,
            ipynb=self.extra,
            ipynb_sha256=self.key,
        )


class Exported(msgspec.Struct, frozen=True):
    """A notebook as an .ipynb file: its name (for the file name) and the file's bytes."""

    name: str | None
    data: bytes


class IpynbService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.exports: ExportCache[Exported] = ExportCache(settings.ipynb_export_cache_bytes)

    # -- import ---------------------------------------------------------------------

    async def import_notebook(self, user_id: UUID, data: bytes, name: str | None) -> IpynbImported:
        """``POST /notebooks/import``: a new notebook of the caller's, or a 400/413 why not."""
        try:
            prepared = await _maybe_in_thread(len(data), self.prepare, data, name)
        except InvalidInput:
            count_ipynb_import("failed")
            raise
        revision = await self.store(user_id, prepared, actor=str(user_id))
        assert revision is not None  # only an import key can make it skip
        count_ipynb_import("imported")
        return IpynbImported(prepared.notebook_id, revision, prepared.warnings)

    def prepare(self, data: bytes, name: str | None = None, *, key: str | None = None) -> Prepared:
        """Read, check and encode one .ipynb (pure CPU; raises ``InvalidInput`` or a 413).

        ``name`` wins over the notebook's metadata title, which wins over
        "Untitled"; a title longer than the names Cellar keeps is cut, and
        the warnings say so.  ``key``: the import key (``import_key``) that
        ``cellar import-ipynb`` knows the file by; None for the route, whose
        every call makes a notebook.
        """
        limits = self.settings
        if len(data) > limits.max_request_body_bytes:
            raise PayloadTooLarge(
                "body",
                f"larger than the {limits.max_request_body_bytes} bytes a request may carry "
                "(MAX_REQUEST_BODY_BYTES)",
            )
        if name is not None:
            _check_name(name, limits.max_name_length)
        try:
            imported = import_ipynb(data)
        except IpynbError as exc:
            raise InvalidInput(exc.where, exc.problem) from None
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            # A document nbformat accepted in a shape the import did not foresee: a bug
            # to fix (logged with its traceback), and for the client still a 400.
            log.warning("an .ipynb nbformat accepts could not be imported", exc_info=exc)
            raise InvalidInput(
                "notebook", f"cannot be imported ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
        warnings = list(imported.warnings)
        if len(imported.cells) > limits.max_cells_per_notebook:
            raise PayloadTooLarge(
                "cells",
                f"{len(imported.cells)} cells; a notebook holds at most "
                f"{limits.max_cells_per_notebook} (MAX_CELLS_PER_NOTEBOOK)",
            )
        position = {}
        for index, cell in enumerate(imported.cells):
            position[cell.id] = index
            code = limits.max_cell_code_bytes
            if len(cell.code) > code // 4 and len(cell.code.encode()) > code:
                raise PayloadTooLarge(
                    f"cells[{index}].source", f"larger than {code} bytes (MAX_CELL_CODE_BYTES)"
                )
        for run in imported.runs:
            outputs = limits.max_cell_outputs_bytes
            shown = len(run.outputs) + len(run.stdout.encode())
            if max(shown, len(run.ipynb or "")) > outputs:
                raise PayloadTooLarge(
                    f"cells[{position[run.cell_id]}].outputs",
                    f"larger than {outputs} bytes for one cell (MAX_CELL_OUTPUTS_BYTES)",
                )
        if name is None:
            name = imported.title or DEFAULT_NAME
            name = name.replace("\x00", "")  # the metadata may hold it; a name may not
            if len(name) > limits.max_name_length:
                name = name[: limits.max_name_length]
                warnings.append(
                    f"metadata.title: longer than {limits.max_name_length} characters; "
                    "the notebook's name is its beginning"
                )
        return Prepared(
            notebook_id=str(uuid4()),
            name=name,
            cells=ENCODE(imported.cells).decode(),
            extra=ENCODE(imported.extra).decode(),
            key=key,
            runs=imported.runs,
            warnings=warnings,
        )

    async def store(self, user_id: UUID, prepared: Prepared, actor: str = "import") -> int | None:
        """Insert a prepared notebook, one transaction; its revision.

        Its event 1 is an ``import`` by ``actor``: ``import`` for the command
        line, the user's id for the route.

        None: the user has a notebook of the same import key (``cellar import-ipynb``
        imported this file before).
        """
        async with connection() as conn:  # one statement: a transaction by itself
            return await store.insert_imported(conn, prepared.row(user_id), prepared.runs, actor)

    # -- export ---------------------------------------------------------------------

    async def export(self, user_id: UUID, notebook_id: str) -> Exported:
        """``GET /notebooks/{id}/ipynb``: the caller's notebook as nbformat 4 JSON."""
        if "\x00" in notebook_id:
            raise NotFound("notebook not found")
        key = (user_id, notebook_id)
        async with connection() as conn:
            if self.exports.enabled:
                stamp = await store.export_stamp(conn, notebook_id, user_id)
                if stamp is None:
                    raise NotFound("notebook not found")
                kept = self.exports.get(key, stamp)
                if kept is not None:
                    return kept
            row = await store.export_row(conn, notebook_id, user_id)
        if row is None:
            raise NotFound("notebook not found")
        exported = Exported(row.name, await _maybe_in_thread(_size(row), render, row))
        if self.exports.enabled:
            self.exports.put(key, row.stamp, exported, len(exported.data))
        return exported


def import_key(name: str, data: bytes) -> str:
    """What ``cellar import-ipynb`` knows a file by: SHA-256 of its name and its bytes.

    Stored with the notebook (``notebooks.ipynb_sha256``, unique per owner):
    a re-run skips a file whose key the owner has, so the same file is
    imported once, while two files of the same bytes under two names (copies
    of a template) are two notebooks, and a changed file is a new one.
    """
    return hashlib.sha256(name.encode() + b"\x00" + data).hexdigest()


def render(row: IpynbRow) -> bytes:
    """A stored notebook as .ipynb bytes (``convert.export_ipynb``, nbformat's writer)."""
    extra = None if row.ipynb is None else _EXTRA.decode(row.ipynb)
    runs = {run.cell_id: run for run in row.runs}
    return export_ipynb(_CELLS.decode(row.cells), runs, extra, row.name)


def _check_name(name: str, limit: int) -> None:
    if len(name) > limit:
        raise InvalidInput("name", f"longer than {limit} characters")
    if "\x00" in name:
        raise InvalidInput("name", "contains U+0000")


def _size(row: IpynbRow) -> int:
    return len(row.cells) + sum(len(run.outputs) + len(run.ipynb or "") for run in row.runs)


async def _maybe_in_thread(size: int, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` here when the data is small, else in a worker thread."""
    if size > THREAD_BYTES:
        return await asyncio.to_thread(work, *args)
    return work(*args)
