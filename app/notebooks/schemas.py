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

from app.store.notebooks import NotebookKind, NotebookSummary, RunStatus

CellType = Literal["python", "sql", "markdown", "raw"]
CELL_TYPES: tuple[CellType, ...] = get_args(CellType)

# PostgreSQL text and jsonb cannot hold U+0000: refuse it here, naming the field,
# rather than let the database answer 500.
NO_NUL = "^[^\x00]*$"
Revision = Annotated[int, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(max_length=255, pattern=NO_NUL)]
Code = Annotated[str, msgspec.Meta(max_length=256 * 1024, pattern=NO_NUL)]
Text = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
Position = Annotated[int, msgspec.Meta(ge=0)]
ConnectionString = Annotated[str, msgspec.Meta(max_length=4096)]


class Output(msgspec.Struct, frozen=True):
    mime_type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    data: Any  # a string (base64 for binary) or any JSON value
    metadata: dict[str, Any] = {}


class StoredCell(msgspec.Struct, frozen=True):
    """One element of ``notebooks.cells``: code and what the server derived from it."""

    id: str
    type: CellType
    code: str
    reads: list[str] = []
    writes: list[str] = []
    metadata: dict[str, Any] = {}


class Cell(msgspec.Struct, frozen=True):
    id: str
    type: CellType
    code: str
    reads: list[str]
    writes: list[str]
    metadata: dict[str, Any]
    status: RunStatus
    stdout: str
    # Stored JSON passes through as msgspec.Raw at run time: never decoded.
    outputs: list[Output]
    error: str | None


class NotebookList(msgspec.Struct, frozen=True):
    notebooks: list[NotebookSummary]


class Notebook(msgspec.Struct, frozen=True):
    id: str
    name: str | None
    kind: NotebookKind
    db_conn_string: str | None
    revision: int
    created_at: datetime
    updated_at: datetime
    cells: list[Cell]


class NotebookCreate(msgspec.Struct, frozen=True):
    name: Name | None = None


class NotebookCreated(msgspec.Struct, frozen=True):
    notebook_id: str


class NotebookRename(msgspec.Struct, frozen=True):
    name: Name | None
    expected_revision: Revision | None = None


class NotebookConnection(msgspec.Struct, frozen=True):
    connection_string: ConnectionString | None
    expected_revision: Revision | None = None


class CellCreate(msgspec.Struct, frozen=True):
    type: CellType
    code: Code = ""
    index: Position | None = None
    expected_revision: Revision | None = None


class CellUpdate(msgspec.Struct, frozen=True):
    code: Code
    expected_revision: Revision | None = None


class CellMove(msgspec.Struct, frozen=True):
    index: Position
    expected_revision: Revision | None = None


class CellOutputs(msgspec.Struct, frozen=True):
    status: RunStatus
    stdout: Text = ""
    outputs: list[Output] = []
    error: Text | None = None


class Saved(msgspec.Struct, frozen=True):
    revision: int
    status: Literal["ok"] = "ok"


class Done(msgspec.Struct, frozen=True):
    status: Literal["ok"] = "ok"


class CellCreated(msgspec.Struct, frozen=True):
    cell: Cell
    revision: int


class CellSaved(msgspec.Struct, frozen=True):
    revision: int
    cell: Cell
    status: Literal["ok"] = "ok"
