"""Reading an .ipynb: bytes → a valid nbformat 4 notebook, repaired where it can be.

nbformat does the reading (its v3/v4 JSON readers, which rejoin split lines
and drop transient keys), the v3 → v4 upgrade and the validation against the
notebook's own minor version's schema; this module adds what an import
service needs around it:

* a clear ``IpynbError`` (the future 400) naming the place for what nbformat
  would crash on or only log: not UTF-8 or JSON, no ``cells`` list, a cell or
  output that is not an object, ``nbformat`` 1, 2 or ≥ 5;
* repairs, each listed in the warnings: cell ids (4.5 and later: missing,
  invalid or duplicate ids get new UUIDs; valid unique ids are kept), keys
  the notebook's schema does not allow (dropped), invalid notebook or cell
  metadata keys (dropped, as ``nbformat.validator.normalize`` would), a
  missing ``metadata``/``source``/``outputs``/``execution_count`` (made
  empty), and JSON's missing ``NaN``/``Infinity`` (stored as null);
* a 4.0-4.4 notebook stays 4.0-4.4: ``nbformat.reads(..., as_version=4)``
  would convert it to 4.5 with random ids, but SPEC §12 wants the export to
  keep the input's minor.  Only v3 is upgraded.

Anything else the schema refuses is an ``IpynbError`` with nbformat's
validation message, shortened and led by the place it is about.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import msgspec
import nbformat
from nbformat.notebooknode import NotebookNode
from nbformat.validator import iter_validate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# nbformat's functions are unannotated; these are the types Cellar relies on.
_upgrade: Callable[..., NotebookNode] = nbformat.v4.upgrade
_errors: Callable[[NotebookNode], Iterator[Any]] = iter_validate

MAX_WARNINGS = 100
MAX_MESSAGE = 240
# nbformat 4.5's cell id (schema ``definitions/cell_id``).
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# Keys nbformat's own reader and writer drop (``rwbase.strip_transient``).
TRANSIENT_METADATA = ("signature", "orig_nbformat", "orig_nbformat_minor")
# What a missing required key is repaired to; anything else missing is an error.
DEFAULTS: dict[str, Callable[[], Any]] = {
    "metadata": NotebookNode,
    "source": str,
    "outputs": list,
    "execution_count": lambda: None,
}
_CELLS = "a notebook has a list of cells"
_V3_SHEETS = "an nbformat 3 notebook has a list of worksheets"
_MAX_ROUNDS = 8  # validation passes; each repairs every error it can and then looks again


class IpynbError(ValueError):
    """A document that cannot be imported as a notebook; ``where`` names the place."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Reading:
    """A valid nbformat 4 notebook and what reading it repaired."""

    notebook: NotebookNode
    warnings: list[str]


def read_ipynb(data: bytes | str) -> Reading:
    """Read, upgrade (v3), repair and validate one .ipynb; raise ``IpynbError`` if it can't be."""
    warnings: list[str] = []
    document = _parse_json(data, warnings)
    major, minor = _check_shape(document, warnings)
    notebook = _nbformat_read(document, major, minor)
    if major == 3:
        warnings.append(f"notebook: nbformat 3.{minor} upgraded to 4.{notebook.nbformat_minor}")
        for key in TRANSIENT_METADATA:
            notebook.metadata.pop(key, None)
    if notebook.nbformat_minor >= 5:
        _repair_ids(notebook.cells, warnings)
    _validate(notebook, warnings)
    if len(warnings) > MAX_WARNINGS:
        more = len(warnings) - MAX_WARNINGS
        warnings = [*warnings[:MAX_WARNINGS], f"… and {more} more repairs like these"]
    return Reading(notebook, warnings)


# -- JSON and shape ------------------------------------------------------------------------------


def _parse_json(data: bytes | str, warnings: list[str]) -> Any:
    # msgspec first (three times faster): strict JSON and UTF-8, so it refuses all that
    # needs a word of its own (NaN, a BOM, a lone surrogate, bad bytes), which the
    # standard library then reads or explains.
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        pass
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IpynbError("notebook", f"not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    text = text.removeprefix("\ufeff")
    constants: list[str] = []

    def constant(name: str) -> None:
        constants.append(name)

    try:
        document = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise IpynbError(
            "notebook", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise IpynbError("notebook", "JSON nested too deeply") from None
    if constants:
        warnings.append(
            f"notebook: {len(constants)} NaN/Infinity value(s), which JSON does not have, "
            "stored as null"
        )
    if re.search(r"\\u[dD][89abAB]", text) and _has_lone_surrogate(document):
        raise IpynbError("notebook", "contains an unpaired UTF-16 surrogate, which is not text")
    return document


def _check_shape(document: Any, warnings: list[str]) -> tuple[int, int]:
    """The checks nbformat's readers assume passed; returns ``(major, minor)``."""
    if not isinstance(document, dict):
        raise IpynbError("notebook", f"expected a JSON object, got {_kind(document)}")
    major = document.get("nbformat")
    if major is None:
        raise IpynbError("nbformat", "missing: this is not a Jupyter notebook")
    if not _is_int(major):
        raise IpynbError("nbformat", f"expected an integer, got {_kind(major)}")
    if major not in (3, 4):
        raise IpynbError(
            "nbformat", f"version {major} is not supported (nbformat 4, or 3 to be upgraded)"
        )
    minor = document.get("nbformat_minor", 0 if major == 3 else None)
    if minor is None:
        raise IpynbError("nbformat_minor", "missing")
    if not _is_int(minor) or minor < 0:
        raise IpynbError("nbformat_minor", f"expected an integer ≥ 0, got {_short(minor)}")
    _object_or_default(document, "metadata", "metadata", warnings)
    for key in TRANSIENT_METADATA:
        if key in document["metadata"]:
            warnings.append(f"metadata.{key}: dropped, as nbformat does")
    if major == 3:
        for w, sheet in enumerate(_list(document, "worksheets", "", missing=_V3_SHEETS)):
            where = f"worksheets[{w}]"
            _require_object(sheet, where)
            for c, cell in enumerate(_list(sheet, "cells", where, missing=_CELLS)):
                _require_object(cell, f"{where}.cells[{c}]")
                for o, output in enumerate(_list(cell, "outputs", f"{where}.cells[{c}]")):
                    _require_object(output, f"{where}.cells[{c}].outputs[{o}]")
        return major, minor
    for index, cell in enumerate(_list(document, "cells", "", missing=_CELLS)):
        _check_cell(cell, f"cells[{index}]", warnings)
    return major, minor


def _check_cell(cell: Any, where: str, warnings: list[str]) -> None:
    _require_object(cell, where)
    _object_or_default(cell, "metadata", f"{where}.metadata", warnings)
    if "trusted" in cell["metadata"]:
        warnings.append(f"{where}.metadata.trusted: dropped, as nbformat does")
    if "source" in cell:
        _require_text(cell["source"], f"{where}.source")
    if "attachments" in cell:
        attachments = cell["attachments"]
        _require_object(attachments, f"{where}.attachments")
        for name, bundle in attachments.items():
            _require_object(bundle, f"{where}.attachments.{name}")
    for index, output in enumerate(_list(cell, "outputs", where)):
        place = f"{where}.outputs[{index}]"
        _require_object(output, place)
        if "text" in output:
            _require_text(output["text"], f"{place}.text")
        if "data" in output:
            _require_object(output["data"], f"{place}.data")


def _list(parent: dict[str, Any], key: str, where: str, *, missing: str = "") -> list[Any]:
    """``parent[key]`` as a list; absent is empty unless ``missing`` says why it may not be."""
    place = f"{where}.{key}" if where else key
    if key not in parent:
        if missing:
            raise IpynbError(place, f"missing: {missing}")
        return []
    value = parent[key]
    if not isinstance(value, list):
        raise IpynbError(place, f"expected a list, got {_kind(value)}")
    return value


def _object_or_default(parent: dict[str, Any], key: str, where: str, warnings: list[str]) -> None:
    if key not in parent:
        parent[key] = {}
        warnings.append(f"{where}: missing; an empty one was made")
    else:
        _require_object(parent[key], where)


def _require_object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise IpynbError(where, f"expected an object, got {_kind(value)}")


def _require_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise IpynbError(where, "expected a string or a list of strings")


# -- nbformat ------------------------------------------------------------------------------------


def _nbformat_read(document: dict[str, Any], major: int, minor: int) -> NotebookNode:
    """nbformat's own reader (and v3 upgrade) over the already parsed document."""
    try:
        notebook: NotebookNode = nbformat.versions[major].to_notebook_json(document, minor=minor)
        if major == 3:
            notebook = _upgrade(notebook, from_version=3, from_minor=minor)
    except (AttributeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        problem = _shorten(f"{type(exc).__name__}: {exc}")
        raise IpynbError(
            "notebook", f"nbformat cannot read it as version {major}: {problem}"
        ) from None
    return notebook


def _repair_ids(cells: list[NotebookNode], warnings: list[str]) -> None:
    """nbformat 4.5 ids: keep valid unique ones, give the others new UUIDs (listed)."""
    seen: dict[str, int] = {}
    for index, cell in enumerate(cells):
        cell_id = cell.get("id")
        if "id" not in cell:
            problem = "id missing"
        elif not isinstance(cell_id, str) or not CELL_ID.fullmatch(cell_id):
            problem = f"id {_short(cell_id)} is not an nbformat cell id (1-64 of a-z A-Z 0-9 - _)"
        elif cell_id in seen:
            problem = f"id {cell_id!r} is also cells[{seen[cell_id]}]'s"
        else:
            seen[cell_id] = index
            continue
        new_id = str(uuid.uuid4())
        cell["id"] = new_id
        seen[new_id] = index
        warnings.append(f"cells[{index}]: {problem}; new id {new_id!r}")


def _validate(notebook: NotebookNode, warnings: list[str]) -> None:
    """Validate against the notebook's own minor; repair what can be, else raise."""
    for _ in range(_MAX_ROUNDS):
        errors = list(islice(_errors(notebook), 10_000))
        if not errors:
            return
        # An error a repair of this round already removed (two errors in one dropped
        # key) looks unrepairable now; only a round that repairs nothing decides.
        unrepaired = [error for error in errors if not _repair(notebook, error, warnings)]
        if len(unrepaired) == len(errors):
            break
    error = next(_errors(notebook), None)
    if error is not None:
        raise IpynbError(_where(list(error.relative_path)), _message(error))


def _repair(notebook: NotebookNode, error: Any, warnings: list[str]) -> bool:
    """Repair one validation error in place if it is of a repairable kind."""
    path = list(error.relative_path)
    # Invalid metadata: drop the offending key (nbformat's ``strip_invalid_metadata``).
    for position, part in enumerate(path):
        owner = path[:position]
        if part == "metadata" and (not owner or (len(owner) == 2 and owner[0] == "cells")):
            if len(path) > position + 1:
                metadata = _node(notebook, path[: position + 1])
                key = path[position + 1]
                if isinstance(metadata, dict) and key in metadata:
                    del metadata[key]
                    warnings.append(f"{_where(path[: position + 2])}: {_message(error)}; dropped")
                    return True
            break
    target = _node(notebook, path)
    if error.validator == "additionalProperties" and isinstance(target, dict):
        schema = error.schema
        allowed = set(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        unknown = [
            key
            for key in target
            if key not in allowed and not any(re.search(p, key) for p in patterns)
        ]
        minor = notebook.get("nbformat_minor")
        for key in unknown:
            del target[key]
            warnings.append(f"{_where(path)}: key {key!r} is not in nbformat 4.{minor}; dropped")
        return bool(unknown)
    if error.validator == "required" and isinstance(target, dict):
        missing = [key for key in error.validator_value if key not in target]
        if not missing or any(key not in DEFAULTS for key in missing):
            return False
        for key in missing:
            target[key] = DEFAULTS[key]()
            warnings.append(f"{_where([*path, key])}: missing; an empty one was made")
        return True
    return False


def _node(root: Any, path: list[Any]) -> Any:
    node = root
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


# -- messages ------------------------------------------------------------------------------------


def _message(error: Any) -> str:
    """nbformat's validation message without the (possibly megabytes long) instance."""
    if error.validator in ("oneOf", "anyOf"):
        instance = error.instance
        if isinstance(instance, dict) and "output_type" in instance:
            return (
                f"output_type {_short(instance['output_type'])} is not one nbformat 4 files "
                "hold (execute_result, display_data, stream, error), or the output is malformed"
            )
        if isinstance(instance, dict) and "cell_type" in instance:
            return (
                f"cell_type {_short(instance['cell_type'])} is not one nbformat 4 has "
                "(code, markdown, raw), or the cell is malformed"
            )
        return "does not match the nbformat schema"
    return _shorten(str(error.message).split("\n", 1)[0])


def _where(path: list[Any]) -> str:
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "notebook"


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, object keys included (iteratively: no depth limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _has_lone_surrogate(document: Any) -> bool:
    for text in json_strings(document):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False
