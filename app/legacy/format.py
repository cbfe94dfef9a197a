"""The legacy file store's shape (SPEC §8) and the pure rules for moving it into Cellar.

One ``{id}.json`` file per notebook::

    {id, user_id?, name, db_conn_string, revision,
     cells: [{id, type, code, status?, stdout?, outputs, error?, reads, writes}]}

Pure (no I/O): decoding and checking a file, deciding its owner and kind,
comparing it with what the database holds, and encoding the export.  Decoding
uses one ``msgspec.json.Decoder`` built at import; each cell's ``outputs`` stays
``msgspec.Raw``, so outputs are stored and exported as the very bytes of the file
and never re-encoded (a 3 MB base64 image costs one copy, not a parse).

Normal form.  A missing ``status``/``stdout``/``outputs``/``error`` means
``idle``/``""``/``[]``/``null``, the state of a cell that never ran; an empty
outputs list is ``[]`` whatever its spacing.  Two files with the same normal
form are the same notebook, which is what makes import → export → import a
fixed point.  ``reads``/``writes`` are never trusted: the server recomputes them
(``app.notebooks.cells.make_cell``) and only reports where the file disagreed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import msgspec

from app.notebooks.schemas import CellType, Output, StoredCell
from app.store.notebooks import NotebookKind, RunState, RunStatus

if TYPE_CHECKING:
    from app.settings import Settings

EMPTY_OUTPUTS = b"[]"
MAX_ID_LENGTH = 255  # notebooks.id, cell_runs.cell_id and users.external_id are varchar(255)
MAX_REVISION = 2**63 - 1  # bigint
DEMO_PREFIX = "demo-"
BLANK_PREFIX = "blank-"


class FormatError(ValueError):
    """A file that cannot be imported; the message is the reason shown to the operator."""


class LegacyError(Exception):
    """The whole run cannot go on (no such directory, a bad option); reported in one line."""


# -- decoding ------------------------------------------------------------------


class LegacyCell(msgspec.Struct, frozen=True):
    id: str
    type: CellType
    code: str
    status: RunStatus = "idle"
    stdout: str = ""
    outputs: msgspec.Raw = msgspec.Raw(EMPTY_OUTPUTS)
    error: str | None = None
    # None: the file did not say (nothing to compare with the server's analysis).
    reads: list[str] | None = None
    writes: list[str] | None = None
    # Not in the legacy shape; accepted so Cellar's own cells round-trip.
    metadata: dict[str, Any] = {}


class LegacyNotebook(msgspec.Struct, frozen=True):
    id: str
    cells: list[LegacyCell]
    user_id: str | None = None
    name: str | None = None
    db_conn_string: str | None = None
    revision: Annotated[int, msgspec.Meta(ge=0, le=MAX_REVISION)] = 0


class _OutputShape(msgspec.Struct, frozen=True):
    """Checks one output's shape without materialising its data."""

    mime_type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    data: msgspec.Raw
    metadata: dict[str, Any] = {}


_NOTEBOOK = msgspec.json.Decoder(LegacyNotebook)
_OUTPUTS = msgspec.json.Decoder(list[_OutputShape])


class Limits(NamedTuple):
    """The service's configured limits (SPEC §3), applied to imported notebooks too."""

    max_cells: int = 2000
    max_code_bytes: int = 256 * 1024
    max_name_length: int = 255
    max_outputs_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_cells=settings.max_cells_per_notebook,
            max_code_bytes=settings.max_cell_code_bytes,
            max_name_length=settings.max_name_length,
            max_outputs_bytes=settings.max_cell_outputs_bytes,
        )


DEFAULT_LIMITS = Limits()


def read_notebook(data: bytes, stem: str, limits: Limits = DEFAULT_LIMITS) -> LegacyNotebook:
    """Decode and check one file's bytes; ``stem`` is the file name without ``.json``.

    Returns the notebook in normal form (empty outputs as ``[]``, an empty
    ``user_id`` as absent), or raises ``FormatError`` with the reason.
    """
    try:
        notebook = _NOTEBOOK.decode(data)
    except msgspec.ValidationError as exc:
        raise FormatError(_path_first(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise FormatError(str(exc)) from None
    if notebook.id != stem:
        raise FormatError(f"id {notebook.id!r} does not match the file name {stem + '.json'!r}")
    _check_text("id", notebook.id, max_length=MAX_ID_LENGTH, empty=False)
    user_id = notebook.user_id or None
    if user_id is not None:
        _check_text("user_id", user_id, max_length=MAX_ID_LENGTH, empty=False)
    if notebook.name is not None:
        _check_text("name", notebook.name, max_length=limits.max_name_length)
    if notebook.db_conn_string is not None:
        _check_text("db_conn_string", notebook.db_conn_string)
    if len(notebook.cells) > limits.max_cells:
        raise FormatError(
            f"cells: {len(notebook.cells)} cells, more than the limit of {limits.max_cells} "
            "(MAX_CELLS_PER_NOTEBOOK)"
        )
    seen: set[str] = set()
    cells = []
    for index, cell in enumerate(notebook.cells):
        where = f"cells[{index}]"
        _check_text(f"{where}.id", cell.id, max_length=MAX_ID_LENGTH, empty=False)
        if cell.id in seen:
            raise FormatError(f"{where}.id: duplicate cell id {cell.id!r} in this notebook")
        seen.add(cell.id)
        _check_text(f"{where}.code", cell.code)
        if len(cell.code) > limits.max_code_bytes // 4:
            size = len(cell.code.encode("utf-8"))
            if size > limits.max_code_bytes:
                raise FormatError(
                    f"{where}.code: {size} bytes, more than the limit of "
                    f"{limits.max_code_bytes} (MAX_CELL_CODE_BYTES)"
                )
        _check_text(f"{where}.stdout", cell.stdout)
        if cell.error is not None:
            _check_text(f"{where}.error", cell.error)
        if cell.metadata and b"\\u0000" in msgspec.json.encode(cell.metadata):
            raise FormatError(f"{where}.metadata: contains a NUL character")
        outputs = _check_outputs(where, cell.outputs)
        if len(outputs) + len(cell.stdout) > limits.max_outputs_bytes:
            raise FormatError(
                f"{where}.outputs: more than the limit of {limits.max_outputs_bytes} bytes "
                "for one cell (MAX_CELL_OUTPUTS_BYTES)"
            )
        if outputs is not cell.outputs:
            cell = msgspec.structs.replace(cell, outputs=outputs)
        cells.append(cell)
    return msgspec.structs.replace(notebook, user_id=user_id, cells=cells)


def _check_outputs(where: str, outputs: msgspec.Raw) -> msgspec.Raw:
    """A list of ``{mime_type, data, metadata}`` in valid UTF-8; ``[]`` when empty."""
    try:
        shapes = _OUTPUTS.decode(outputs)
    except msgspec.ValidationError as exc:
        raise FormatError(_path_first(str(exc), f"{where}.outputs")) from None
    except msgspec.DecodeError as exc:  # pragma: no cover - the whole file decoded already
        raise FormatError(f"{where}.outputs: {exc}") from None
    if not shapes:
        return msgspec.Raw(EMPTY_OUTPUTS)
    try:
        bytes(outputs).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{where}.outputs: not valid UTF-8") from None
    return outputs


def _check_text(
    field: str, value: str, *, max_length: int | None = None, empty: bool = True
) -> None:
    if not empty and not value:
        raise FormatError(f"{field}: must not be empty")
    if max_length is not None and len(value) > max_length:
        raise FormatError(f"{field}: longer than {max_length} characters")
    if "\x00" in value:
        raise FormatError(f"{field}: contains a NUL character, which PostgreSQL cannot store")


def _path_first(message: str, root: str = "$") -> str:
    """msgspec's ``Expected `array`, got `object` - at `$.cells` `` → ``$.cells: expected …``.

    ``root`` replaces the ``$`` of the path (for documents decoded inside the file).
    """
    text, sep, path = message.rpartition(" - at ")
    if not sep:
        text, path = message, "`$`"
    return f"{root}{path.strip('`')[1:]}: {text[:1].lower()}{text[1:]}"


# -- owner and kind ---------------------------------------------------------------


def owner_of(notebook: LegacyNotebook, default_owner: str | None) -> str | None:
    """The owner's external id: ``user_id``, else ``demo-<user>``/``blank-<user>``, else default."""
    if notebook.user_id:
        return notebook.user_id
    prefix = special_prefix(notebook.id)
    if prefix is not None:
        return notebook.id[len(prefix) :]
    return default_owner or None


def kind_of(notebook_id: str, owner: str) -> NotebookKind:
    """``demo-<owner>`` and ``blank-<owner>`` are the owner's demo and blank notebooks.

    Only the id naming its own owner counts, so each owner has at most one
    candidate per kind in a directory, whatever order the files come in.
    """
    if notebook_id == DEMO_PREFIX + owner:
        return "demo"
    if notebook_id == BLANK_PREFIX + owner:
        return "blank"
    return "user"


def special_prefix(notebook_id: str) -> str | None:
    """``demo-``/``blank-`` when the id has one (whoever it names), else None."""
    for prefix in (DEMO_PREFIX, BLANK_PREFIX):
        if notebook_id.startswith(prefix) and len(notebook_id) > len(prefix):
            return prefix
    return None


def has_run_state(cell: LegacyCell) -> bool:
    """False for a cell that never ran: such a cell gets no ``cell_runs`` row."""
    return (
        cell.status != "idle"
        or cell.stdout != ""
        or cell.error is not None
        or bytes(cell.outputs) != EMPTY_OUTPUTS
    )


# -- comparing with the database ---------------------------------------------------


class Undecryptable:
    """A stored connection string this ENCRYPTION_KEY cannot read (never equal to a file's)."""

    def __repr__(self) -> str:
        return "<not decryptable with this ENCRYPTION_KEY>"


UNDECRYPTABLE = Undecryptable()


@dataclass(frozen=True, slots=True)
class StoredNotebook:
    """What the database holds for one notebook, in the file's terms."""

    id: str
    owner: str | None  # the owner's external id
    name: str | None
    db_conn_string: str | Undecryptable | None  # in clear
    revision: int
    cells: list[StoredCell]
    runs: dict[str, RunState]  # by cell id; a cell without one never ran


@dataclass(frozen=True, slots=True)
class Difference:
    notebook_id: str
    cell_id: str | None
    field: str
    file: object
    db: object

    def describe(self, width: int = 60, theirs: str = "db") -> str:
        """``notebook cell field: file=… db=…``, long values cut to ``width`` characters."""
        cell = self.cell_id if self.cell_id is not None else "-"
        return (
            f"{self.notebook_id} {cell} {self.field}: "
            f"file={_short(self.file, width)} {theirs}={_short(self.db, width)}"
        )


class _Mark:
    """``present``/``missing``: whether a cell (or notebook) exists on one side."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PRESENT = _Mark("present")
MISSING = _Mark("missing")


def _short(value: object, width: int) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = repr(value)
    if len(text) > width:
        return f"{text[: width - 1]}… ({len(text)} chars)"
    return text


def differences(file: LegacyNotebook, owner: str, stored: StoredNotebook) -> list[Difference]:
    """Every field where the database differs from the file, in the file's order.

    These are exactly the fields an import would change.  ``revision`` differs
    only when the file's is higher (the database may be ahead: an import that
    updates a notebook raises its revision past the file's).  ``reads`` and
    ``writes`` are derived data, compared separately (``analysis_differences``).
    """
    nid = file.id
    found: list[Difference] = []
    if stored.owner != owner:
        found.append(Difference(nid, None, "user_id", owner, stored.owner))
    if stored.name != file.name:
        found.append(Difference(nid, None, "name", file.name, stored.name))
    if stored.db_conn_string != file.db_conn_string:
        found.append(
            Difference(nid, None, "db_conn_string", file.db_conn_string, stored.db_conn_string)
        )
    if file.revision > stored.revision:
        found.append(Difference(nid, None, "revision", file.revision, stored.revision))
    stored_cells = {cell.id: cell for cell in stored.cells}
    file_ids = [cell.id for cell in file.cells]
    file_set = set(file_ids)
    for cell in file.cells:
        if cell.id not in stored_cells:
            found.append(Difference(nid, cell.id, "cell", PRESENT, MISSING))
    for db_only in stored.cells:
        if db_only.id not in file_set:
            found.append(Difference(nid, db_only.id, "cell", MISSING, PRESENT))
    common_file = [cid for cid in file_ids if cid in stored_cells]
    common_db = [cell.id for cell in stored.cells if cell.id in file_set]
    if common_file != common_db:
        found.append(Difference(nid, None, "cell order", common_file, common_db))
    for cell in file.cells:
        db_cell = stored_cells.get(cell.id)
        if db_cell is None:
            continue
        run = stored.runs.get(cell.id) or RunState(cell.id)
        outputs = bytes(cell.outputs), run.outputs.encode("utf-8")
        fields: tuple[tuple[str, object, object, bool], ...] = (
            ("type", cell.type, db_cell.type, cell.type == db_cell.type),
            ("code", cell.code, db_cell.code, cell.code == db_cell.code),
            ("metadata", cell.metadata, db_cell.metadata, cell.metadata == db_cell.metadata),
            ("status", cell.status, run.status, cell.status == run.status),
            ("stdout", cell.stdout, run.stdout, cell.stdout == run.stdout),
            ("outputs", *outputs, same_outputs(*outputs)),
            ("error", cell.error, run.error, cell.error == run.error),
        )
        for field, mine, theirs, same in fields:
            if not same:
                found.append(Difference(nid, cell.id, field, mine, theirs))
    return found


# Outputs as values, in the API's shape (``metadata`` is ``{}`` when left out).
_OUTPUT_VALUES = msgspec.json.Decoder(list[Output])


def same_outputs(file: bytes, stored: bytes) -> bool:
    """Whether two outputs lists hold the same JSON values, however they are spelled.

    ``PUT …/outputs`` stores outputs re-encoded (compact, ``metadata: {}``
    filled in) while the import keeps a file's bytes; either way the same
    outputs are not a difference.  Bytes are compared first: equal bytes
    (the import's own writes, an export read back) need no decoding.
    """
    if file == stored:
        return True
    try:
        return _OUTPUT_VALUES.decode(file) == _OUTPUT_VALUES.decode(stored)
    except msgspec.DecodeError:
        return False


def analysis_differences(
    notebook_id: str, cell: LegacyCell, computed: StoredCell
) -> list[Difference]:
    """Where the file's ``reads``/``writes`` disagree with the server's analysis (order aside)."""
    found = []
    if cell.reads is not None and sorted(cell.reads) != computed.reads:
        found.append(Difference(notebook_id, cell.id, "reads", cell.reads, computed.reads))
    if cell.writes is not None and sorted(cell.writes) != computed.writes:
        found.append(Difference(notebook_id, cell.id, "writes", cell.writes, computed.writes))
    return found


# -- encoding the export ------------------------------------------------------------


class ExportCell(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    type: str
    code: str
    status: str
    stdout: str
    outputs: msgspec.Raw
    error: str | None
    reads: list[str]
    writes: list[str]
    metadata: dict[str, Any] = {}  # written only when not empty (not in the legacy shape)


class ExportNotebook(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    user_id: str | None = None  # omitted when the owner has no external id
    name: str | None
    db_conn_string: str | None
    revision: int
    cells: list[ExportCell]


def export_cell(cell: StoredCell, run: RunState | None) -> ExportCell:
    run = run or RunState(cell.id)
    return ExportCell(
        id=cell.id,
        type=cell.type,
        code=cell.code,
        status=run.status,
        stdout=run.stdout,
        outputs=msgspec.Raw(run.outputs),
        error=run.error,
        reads=cell.reads,
        writes=cell.writes,
        metadata=cell.metadata,
    )


_ENCODER = msgspec.json.Encoder()


def encode_export(notebook: ExportNotebook) -> bytes:
    """Compact JSON and a final newline; outputs are copied as stored, byte for byte."""
    return _ENCODER.encode(notebook) + b"\n"


def is_safe_file_stem(notebook_id: str) -> bool:
    """Whether ``{id}.json`` names a plain file inside the export directory."""
    return (
        bool(notebook_id)
        and not notebook_id.startswith(".")
        and "/" not in notebook_id
        and "\\" not in notebook_id
        and "\x00" not in notebook_id
        and len(notebook_id.encode("utf-8")) <= 250  # most file systems: 255 bytes per name
    )
