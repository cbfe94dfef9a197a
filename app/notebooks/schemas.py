"""Bodies of the notebook routes (SPEC §3), snake_case exactly as the frontend sends them.

Input Structs carry the hard ceilings as ``msgspec.Meta`` so a malformed
body is a 400 naming the field before any service code runs; the
configurable limits (settings) are checked again in the service, which may
only be stricter.  ``StoredCell`` is the shape inside ``notebooks.cells``;
``Cell`` is what the API shows, with the run state merged in.
``NotebookSummary``, an item of the list, is the list's row as the store
declares it (``app.store.notebooks``): served as it comes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

from app.store.notebooks import NotebookKind, NotebookSummary, RunStatus, TrashedNotebook

# "code": a code cell of an imported notebook in a language other than Python (SPEC §12).
CellType = Literal["python", "sql", "markdown", "raw", "code"]
CELL_TYPES: tuple[CellType, ...] = get_args(CellType)

# PostgreSQL text and jsonb cannot hold U+0000: refuse it here, naming the field,
# rather than let the database answer 500.
NO_NUL = "^[^\x00]*$"
# A revision is a PostgreSQL bigint ≥ 0 (SPEC §1): bounded here so that a larger
# one is a 400 naming the field, never a value the database refuses with a 500.
MAX_REVISION = 2**63 - 1
Revision = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=MAX_REVISION,
        description="Apply only if this is the current revision (else 409, nothing changes).",
    ),
]
Name = Annotated[
    str, msgspec.Meta(max_length=255, pattern=NO_NUL, description="The notebook's name.")
]
Code = Annotated[
    str, msgspec.Meta(max_length=256 * 1024, pattern=NO_NUL, description="The cell's source.")
]
# A position is sent to PostgreSQL as an int (jsonb paths): anything larger is out of
# range for every notebook anyway, and a 400 naming the field rather than a 500.
MAX_POSITION = 2**31 - 1
Position = Annotated[
    int, msgspec.Meta(ge=0, le=MAX_POSITION, description="0-based position in the cell list.")
]
ConnectionString = Annotated[
    str,
    msgspec.Meta(max_length=4096, description="A database URL or libpq string; null clears it."),
]
# Fields of the answers, described once.
CellId = Annotated[str, msgspec.Meta(description="The cell's id (a UUID for new cells).")]
NotebookId = Annotated[str, msgspec.Meta(description="The notebook's id (UUID text for new ones).")]
CurrentRevision = Annotated[
    int, msgspec.Meta(description="The notebook's revision after this; send it back to edit.")
]


class Output(msgspec.Struct, frozen=True):
    mime_type: Annotated[
        str, msgspec.Meta(min_length=1, max_length=255, examples=["text/plain", "image/png"])
    ]
    data: Annotated[Any, msgspec.Meta(description="A string (base64 for binary) or any JSON.")]
    metadata: Annotated[dict[str, Any], msgspec.Meta(description="Free-form.")] = {}


class StoredCell(msgspec.Struct, frozen=True):
    """One element of ``notebooks.cells``: code and what the server derived from it."""

    id: str
    type: CellType
    code: str
    reads: list[str] = []
    writes: list[str] = []
    metadata: dict[str, Any] = {}


class Cell(msgspec.Struct, frozen=True):
    id: CellId
    type: CellType
    code: str
    reads: Annotated[list[str], msgspec.Meta(description="Names it uses that others define.")]
    writes: Annotated[list[str], msgspec.Meta(description="Names it defines.")]
    metadata: Annotated[dict[str, Any], msgspec.Meta(description="Free-form, kept as given.")]
    status: Annotated[RunStatus, msgspec.Meta(description="Run state: the execution engine's.")]
    stdout: str
    # Stored JSON passes through as msgspec.Raw at run time: never decoded.
    outputs: list[Output]
    error: str | None


MAX_PAGE = 1000
DEFAULT_PAGE = 100
"""Rows per page when only ``cursor`` is given (the walk goes on without ``limit``)."""

PageLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)]


class NotebookList(msgspec.Struct, frozen=True):
    notebooks: list[NotebookSummary]
    next_cursor: Annotated[
        str | None,
        msgspec.Meta(
            description="Pass as `cursor` for the next page; null on the last page "
            "and when the list was asked for without `limit` (every notebook)."
        ),
    ] = None


class TrashList(msgspec.Struct, frozen=True):
    notebooks: Annotated[
        list[TrashedNotebook], msgspec.Meta(description="Most recently deleted first.")
    ]


class NotebookRestore(msgspec.Struct, frozen=True):
    expected_revision: Revision | None = None


class Notebook(msgspec.Struct, frozen=True):
    id: NotebookId
    name: str | None
    kind: NotebookKind
    db_conn_string: Annotated[
        str | None, msgspec.Meta(description="The sql cells' database, password masked as ***.")
    ]
    revision: Annotated[int, msgspec.Meta(description="Also the `ETag`; send it back to edit.")]
    created_at: datetime
    updated_at: datetime
    cells: list[Cell]


class NotebookCreate(msgspec.Struct, frozen=True):
    name: Name | None = None


class NotebookCreated(msgspec.Struct, frozen=True):
    notebook_id: NotebookId


class NotebookRename(msgspec.Struct, frozen=True):
    name: Name | None
    expected_revision: Revision | None = None


class NotebookConnection(msgspec.Struct, frozen=True):
    connection_string: ConnectionString | None
    expected_revision: Revision | None = None


class CellCreate(msgspec.Struct, frozen=True):
    type: Annotated[CellType, msgspec.Meta(description="The app makes python and sql cells.")]
    code: Code = ""
    index: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                le=MAX_POSITION,
                description="Where to insert (0 = first); absent: at the end.",
            ),
        ]
        | None
    ) = None
    expected_revision: Revision | None = None


class CellUpdate(msgspec.Struct, frozen=True):
    code: Code
    expected_revision: Revision | None = None


class CellMove(msgspec.Struct, frozen=True):
    index: Position
    expected_revision: Revision | None = None


class CellOutputs(msgspec.Struct, frozen=True):
    status: Annotated[RunStatus, msgspec.Meta(description="The cell's run state now.")]
    stdout: Annotated[str, msgspec.Meta(pattern=NO_NUL, description="What it printed.")] = ""
    outputs: Annotated[
        list[Output], msgspec.Meta(description="Rich results; `MAX_CELL_OUTPUTS_BYTES` in all.")
    ] = []
    error: (
        Annotated[str, msgspec.Meta(pattern=NO_NUL, description="The error, when the run failed.")]
        | None
    ) = None


class Saved(msgspec.Struct, frozen=True):
    revision: CurrentRevision
    status: Literal["ok"] = "ok"


class Done(msgspec.Struct, frozen=True):
    status: Literal["ok"] = "ok"


class CellCreated(msgspec.Struct, frozen=True):
    cell: Cell
    revision: CurrentRevision


class CellSaved(msgspec.Struct, frozen=True):
    revision: CurrentRevision
    cell: Cell
    status: Literal["ok"] = "ok"
    merged: Annotated[
        bool,
        msgspec.Meta(
            description="True when `expected_revision`/`If-Match` was stale but nobody had "
            "touched this cell since: the edit was applied over the others' changes."
        ),
    ] = False
