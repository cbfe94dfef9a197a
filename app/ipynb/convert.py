"""An .ipynb split into Cellar's cells, runs and extras, and joined back (SPEC §12).

Import (``import_ipynb``): each nbformat cell becomes a ``StoredCell`` made by
``make_cell`` (so reads/writes are the server's), its run the store's
``RunState`` with the nbformat record, and what neither holds an
``IpynbNotebookExtra``; see ``app.ipynb.schemas`` for
where each is stored and why.

* Ids: a 4.5 notebook's cell ids are Cellar's (``reading`` made them valid and
  unique); a 4.0-4.4 notebook has none, so its cells get UUIDs that are not
  exported.  An id Cellar cannot export as an nbformat id (a legacy id such
  as ``cell.1``) is exported as a derived valid id with the real one in
  ``metadata.cellar.id``, which the import then takes back.
* Types: ``metadata.cellar.type`` (python, sql or code) decides for code
  cells; else a code cell is ``python`` when the kernel language is Python or
  not given, and ``code`` (analysed as nothing) in any other language.
  Markdown and raw cells stay so.  Cell metadata is kept as it is.

Export (``export_ipynb``) writes the stored cells in their current order and
text, with the extras and each cell's nbformat outputs (or outputs derived
from the API's run state when the execution engine rewrote them), through
nbformat's own writer.  A notebook made in Cellar (no extra) is 4.5 with a
Python kernelspec, and every code cell carries ``metadata.cellar.type``; in
an imported notebook only the cells whose type the import would not infer
get it, so an unchanged notebook comes back as it came in.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
import nbformat

from app.ipynb.outputs import ipynb_outputs, run_view
from app.ipynb.reading import CELL_ID, IpynbError, json_strings, read_ipynb
from app.ipynb.schemas import IpynbCellExtra, IpynbCellRun, IpynbImport, IpynbNotebookExtra
from app.notebooks.cells import make_cell
from app.notebooks.schemas import Output
from app.store.notebooks import RunState

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from nbformat.notebooknode import NotebookNode

    from app.notebooks.schemas import CellType, StoredCell

__all__ = ["export_ipynb", "import_ipynb", "is_python_kernel", "nbformat_id"]

PYTHON_LANGUAGES = frozenset({"python", "python2", "python3", "ipython", "ipython2", "ipython3"})
CODE_TYPES: frozenset[str] = frozenset({"python", "sql", "code"})
# The nbformat cell keys Cellar models; any other is a newer minor's and kept as it is.
CELL_KEYS = frozenset(
    {"id", "cell_type", "metadata", "source", "outputs", "execution_count", "attachments"}
)
NOTEBOOK_KEYS = frozenset({"cells", "metadata", "nbformat", "nbformat_minor"})
APP_MINOR = 5  # SPEC §12: notebooks made in Cellar export as 4.5, whatever nbformat's newest
APP_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
ENCODE = msgspec.json.encode
_RECORD = msgspec.json.Decoder(IpynbCellRun)
_SHOWN = msgspec.json.Decoder(list[Output])
# nbformat's functions are unannotated; these are the types Cellar relies on.
_from_dict: Callable[[Any], Any] = nbformat.from_dict
_write: Callable[[Any], str] = nbformat.v4.writes
_DECLARABLE: tuple[CellType, ...] = ("python", "sql", "code")


def import_ipynb(data: bytes | str) -> IpynbImport:
    """Read an .ipynb (``reading.read_ipynb``) and split it into what Cellar stores."""
    reading = read_ipynb(data)
    notebook = reading.notebook
    minor = int(notebook.nbformat_minor)
    python = is_python_kernel(notebook.metadata)
    cells: list[StoredCell] = []
    runs: list[RunState] = []
    extras: dict[str, IpynbCellExtra] = {}
    taken: set[str] = set()
    for index, cell in enumerate(notebook.cells):
        where = f"cells[{index}]"
        if cell.cell_type not in ("code", "markdown", "raw"):
            # nbformat lets a minor newer than it knows have cell types it does not.
            raise IpynbError(
                where,
                f"cell_type {cell.cell_type!r} is not one Cellar can keep (code, markdown, raw)",
            )
        source: str = cell.source
        if "\x00" in source:
            raise IpynbError(f"{where}.source", "contains U+0000, which PostgreSQL cannot store")
        if any("\x00" in text for text in json_strings(cell.metadata)):
            raise IpynbError(f"{where}.metadata", "contains U+0000, which PostgreSQL cannot store")
        cell_id = _cellar_id(cell, minor, taken)
        taken.add(cell_id)
        cell_type = _cellar_type(cell, python)
        cells.append(make_cell(cell_type, source, cell_id, _plain(cell.metadata)))
        if cell.cell_type == "code":
            run = _imported_run(cell_id, cell.get("outputs", []), cell.get("execution_count"))
            if run is not None:
                runs.append(run)
        keys = {key: value for key, value in cell.items() if key not in CELL_KEYS}
        if "attachments" in cell or keys:
            extras[cell_id] = IpynbCellExtra(
                attachments=_plain(cell.attachments) if "attachments" in cell else msgspec.UNSET,
                keys=_plain(keys),
            )
    title = notebook.metadata.get("title")
    return IpynbImport(
        cells=cells,
        runs=runs,
        extra=IpynbNotebookExtra(
            nbformat_minor=minor,
            metadata=_plain(notebook.metadata),
            cells=extras,
            keys=_plain({k: v for k, v in notebook.items() if k not in NOTEBOOK_KEYS}),
        ),
        title=(title.strip() or None) if isinstance(title, str) else None,
        warnings=reading.warnings,
    )


def export_ipynb(
    cells: Sequence[StoredCell],
    runs: Mapping[str, RunState],
    extra: IpynbNotebookExtra | None,
    name: str | None = None,
) -> bytes:
    """The notebook as nbformat 4 JSON (UTF-8, as Jupyter writes it), via nbformat's writer.

    ``runs`` maps cell ids to their run state (cells without one never ran);
    ``extra`` is what the import kept, ``None`` for a notebook made in Cellar,
    whose ``name`` then becomes the metadata title.
    """
    if extra is None:
        minor = APP_MINOR
        metadata: dict[str, Any] = {"kernelspec": dict(APP_KERNELSPEC)}
        metadata["language_info"] = {"name": "python"}
        if name:
            metadata["title"] = name
        cell_extras: Mapping[str, IpynbCellExtra] = {}
        keys: dict[str, Any] = {}
    else:
        minor, metadata, cell_extras, keys = (
            extra.nbformat_minor,
            extra.metadata,
            extra.cells,
            extra.keys,
        )
    python = is_python_kernel(metadata)
    document = {
        **keys,
        "cells": [
            _ipynb_cell(cell, runs.get(cell.id), cell_extras.get(cell.id), minor, python, extra)
            for cell in cells
        ],
        "metadata": metadata,
        "nbformat": 4,
        "nbformat_minor": minor,
    }
    return (_write(_from_dict(document)) + "\n").encode()


def is_python_kernel(metadata: Mapping[str, Any]) -> bool:
    """Python, or no language given: ``language_info.name``, else ``kernelspec.language``."""
    language: Any = None
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        section = metadata.get(key)
        if isinstance(section, dict) and isinstance(section.get(field), str):
            language = section[field].strip()
            if language:
                break
    return not language or language.lower() in PYTHON_LANGUAGES


def nbformat_id(cell_id: str) -> str:
    """The nbformat 4.5 id a Cellar cell id is exported as: itself when valid, else derived."""
    if CELL_ID.fullmatch(cell_id):
        return cell_id
    return "cellar-" + hashlib.sha256(cell_id.encode()).hexdigest()[:32]


# -- import --------------------------------------------------------------------------------------


def _cellar_id(cell: NotebookNode, minor: int, taken: set[str]) -> str:
    if minor < 5:
        return str(uuid.uuid4())
    cellar = cell.metadata.get("cellar")
    kept = cellar.get("id") if isinstance(cellar, dict) else None
    if (
        isinstance(kept, str)
        and kept not in taken
        and len(kept) <= 255
        and nbformat_id(kept) == cell.id
    ):
        return kept
    cell_id: str = cell.id
    return cell_id


def _cellar_type(cell: NotebookNode, python: bool) -> CellType:
    if cell.cell_type == "markdown":
        return "markdown"
    if cell.cell_type == "raw":
        return "raw"
    return _declared_type(cell.metadata) or ("python" if python else "code")


def _declared_type(metadata: Mapping[str, Any]) -> CellType | None:
    cellar = metadata.get("cellar")
    declared = cellar.get("type") if isinstance(cellar, dict) else None
    return next((cell_type for cell_type in _DECLARABLE if cell_type == declared), None)


def _imported_run(cell_id: str, outputs: list[Any], execution_count: int | None) -> RunState | None:
    if not outputs and execution_count is None:
        return None
    view = run_view(outputs, execution_count)
    shown = ENCODE(view.outputs).decode()
    shared = []
    for api_index, (output, source) in enumerate(zip(view.outputs, view.shown, strict=True)):
        if source is not None:  # the API holds this data: the record need not hold it too
            del outputs[source]["data"][output.mime_type]
            shared.append((source, api_index))
    record = IpynbCellRun(outputs=outputs, execution_count=execution_count, shared=shared)
    return RunState(
        cell_id=cell_id,
        status=view.status,
        stdout=view.stdout,
        outputs=shown,
        error=view.error,
        ipynb=ENCODE(record).decode(),
    )


def _plain(value: Any) -> Any:
    """nbformat's ``NotebookNode`` (a dict subclass) as the plain JSON value it holds."""
    return msgspec.json.decode(ENCODE(value))


# -- export --------------------------------------------------------------------------------------


def _ipynb_cell(
    cell: StoredCell,
    run: RunState | None,
    cell_extra: IpynbCellExtra | None,
    minor: int,
    python: bool,
    extra: IpynbNotebookExtra | None,
) -> dict[str, Any]:
    metadata = cell.metadata
    cellar: dict[str, Any] = {}
    if cell.type in CODE_TYPES and (
        extra is None or (_declared_type(metadata) or ("python" if python else "code")) != cell.type
    ):
        cellar["type"] = cell.type
    exported_id = nbformat_id(cell.id)
    if minor >= 5 and exported_id != cell.id:
        cellar["id"] = cell.id
    if cellar:
        previous = metadata.get("cellar")
        metadata = {
            **metadata,
            "cellar": {**(previous if isinstance(previous, dict) else {}), **cellar},
        }
    result: dict[str, Any] = {"metadata": metadata, "source": cell.code}
    if minor >= 5:
        result["id"] = exported_id
    if cell.type in CODE_TYPES:
        result["cell_type"] = "code"
        result["outputs"], result["execution_count"] = _outputs(run)
    else:
        result["cell_type"] = cell.type
        if cell_extra is not None and cell_extra.attachments is not msgspec.UNSET:
            result["attachments"] = cell_extra.attachments
    if cell_extra is not None:
        result.update(cell_extra.keys)
    return result


def _outputs(run: RunState | None) -> tuple[list[Any], int | None]:
    if run is None:
        return [], None
    if run.ipynb is not None:
        record = _RECORD.decode(run.ipynb)
        if record.shared:
            shown = _SHOWN.decode(run.outputs)
            for source, api_index in record.shared:
                output = shown[api_index]
                record.outputs[source]["data"][output.mime_type] = output.data
        return record.outputs, record.execution_count
    return ipynb_outputs(run.stdout, run.outputs, run.error), None
