"""What Cellar keeps of an .ipynb beyond its cells (SPEC §12), as msgspec Structs to store.

An imported notebook lands in three places, each where its edits already go:

* the cells (id, type, code, metadata) in ``notebooks.cells``, as ``StoredCell``;
* each code cell's run state in ``cell_runs``, as the store's ``RunState``: the
  four fields the API shows (derived from the nbformat outputs for the app)
  plus its ``ipynb`` field, an ``IpynbCellRun`` as JSON text: the nbformat
  outputs and execution count exactly as read.  Outputs stay out of
  ``cells`` so that a code edit never rewrites them (§9);
* the rest, which no API route edits, in ``IpynbNotebookExtra`` beside the
  notebook: notebook metadata, ``nbformat_minor``, and per cell the
  attachments and any key of a future nbformat minor.

All of it is JSON without a schema of Cellar's own (notebook metadata is
free-form), so it belongs in ``json`` columns: PostgreSQL keeps ``json`` as
text, ``\\u0000`` included, and nobody queries inside it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from app.notebooks.schemas import CurrentRevision, NotebookId, StoredCell
from app.store.notebooks import RunState


class IpynbCellRun(msgspec.Struct, frozen=True, omit_defaults=True):
    """A code cell's run as the .ipynb recorded it: ``RunState.ipynb``, as JSON text.

    ``outputs`` is the nbformat outputs list as read (every ``output_type``,
    mime bundle, metadata, stream name, traceback), except the data the API
    shows: ``(i, k)`` in ``shared`` says that output ``i``'s data for the
    mime of API output ``k`` is API output ``k``'s data (``RunState.outputs``),
    stored once, there, rather than twice (a figure's PNG would be).  The
    record describes the run that produced the API's run state, so when the
    execution engine writes new outputs for the cell it is stale and is
    dropped (the engine's ``RunState`` carries none); the export then
    derives nbformat outputs from the API's run state instead.
    """

    outputs: list[Any] = []
    execution_count: int | None = None
    shared: list[tuple[int, int]] = []


class IpynbCellExtra(msgspec.Struct, frozen=True, omit_defaults=True):
    """A cell's .ipynb keys that are neither Cellar's cell nor its run state.

    ``attachments`` (markdown and raw cells: images pasted into the text) is
    unset when the cell had no such key, so ``{}`` and absent stay apart.
    ``keys`` holds cell keys that only a newer nbformat 4 minor than 4.5
    defines; older minors forbid unknown keys (they are dropped on import).
    """

    attachments: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    keys: dict[str, Any] = {}


class IpynbNotebookExtra(msgspec.Struct, frozen=True, omit_defaults=True):
    """What an imported notebook carries beyond its cells and runs; stored beside the notebook.

    ``nbformat_minor`` is the input's (4.0-4.4 notebooks have no cell ids and
    are exported without them); a v3 input is upgraded and counts as 4.5.
    ``cells`` maps cell ids to their extras, only for cells that have any: a
    cell deleted later leaves an entry the export ignores.  A notebook made in
    Cellar has no extra at all and exports as 4.5 (``convert.export_ipynb``).
    """

    nbformat_minor: int
    metadata: dict[str, Any] = {}
    cells: dict[str, IpynbCellExtra] = {}
    keys: dict[str, Any] = {}


class IpynbImport(msgspec.Struct, frozen=True):
    """An .ipynb split into what Cellar stores, and what the import repaired.

    ``runs`` holds the run states of the code cells that ran (outputs or an
    execution count), each with its record; ``title`` is the notebook
    metadata's title, the name to use when the request names none;
    ``warnings`` go back to the client as they are.
    """

    cells: list[StoredCell]
    runs: list[RunState]
    extra: IpynbNotebookExtra
    title: str | None
    warnings: list[str]


class IpynbImported(msgspec.Struct, frozen=True):
    """The notebook an .ipynb became."""

    notebook_id: NotebookId
    revision: CurrentRevision
    warnings: Annotated[
        list[str],
        msgspec.Meta(
            description="What was repaired on the way in (cell ids made, keys dropped, a "
            "v3 upgrade, a title cut to fit), one line each; empty when nothing was."
        ),
    ]
