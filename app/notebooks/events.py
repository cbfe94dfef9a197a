"""What the events of notebook changes hold (SPEC §11), where Python builds it (pure, no I/O).

Most events' data is built in SQL from the row being changed
(``app.store.notebooks``); the ``outputs`` event is built here, from the run
state the execution engine sent, because of two rules SQL would make costly:

- an output entry whose JSON is over 64 KiB is replaced by
  ``{"truncated": true, "bytes": N}`` (N its JSON size): the event log, read
  by every realtime client, never carries a plot or a table of megabytes;
- ``jsonb`` cannot hold U+0000, which an output's data may (the run state
  itself is stored as ``json`` text, which can): in an event it shows as
  U+FFFD, so a NUL never turns a write into a 500.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from app.notebooks.schemas import CellOutputs

# An output entry whose JSON is larger is replaced by its size in an event.
MAX_EVENT_OUTPUT_BYTES = 64 * 1024

_ENCODE = msgspec.json.encode
# "\u0000" in JSON text, not preceded by an escaped backslash ("\\u0000" is text).
_ESCAPED_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def jsonb_safe(document: bytes) -> bytes:
    """JSON text with every escaped U+0000 replaced by U+FFFD: what jsonb accepts."""
    if b"\\u0000" not in document:
        return document
    return _ESCAPED_NUL.sub(rb"\1\\ufffd", document)


def truncated_outputs(outputs: list[Any]) -> list[Any]:
    """Each entry as JSON, or its size when over ``MAX_EVENT_OUTPUT_BYTES``."""
    entries: list[Any] = []
    for output in outputs:
        encoded = _ENCODE(output)
        if len(encoded) > MAX_EVENT_OUTPUT_BYTES:
            entries.append({"truncated": True, "bytes": len(encoded)})
        else:
            entries.append(msgspec.Raw(encoded))
    return entries


def outputs_event(run: CellOutputs) -> str:
    """The data of an ``outputs`` event: the new run state, large entries truncated (JSON)."""
    data = {
        "status": run.status,
        "stdout": run.stdout,
        "outputs": truncated_outputs(run.outputs),
        "error": run.error,
    }
    return jsonb_safe(_ENCODE(data)).decode()
