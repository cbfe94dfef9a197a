"""nbformat outputs ↔ the API's run state (status, stdout, outputs, error; SPEC §1).

Import: the app shows a cell's run as ``stdout``, a list of
``{mime_type, data, metadata}`` and an ``error`` string, so each nbformat
output is shown by the one representation a static frontend renders best:

* ``stream`` stdout → appended to ``stdout``; stderr → an output of mime
  ``application/vnd.jupyter.stderr`` (JupyterLab's own name for it), in place;
* ``display_data`` / ``execute_result`` → one output: the richest mime of the
  bundle by ``MIME_ORDER`` (plots and tables before images before text; a
  widget view, which needs a live kernel, only when nothing else is there),
  with the output's metadata as nbformat has it;
* ``error`` → ``error``: the traceback without ANSI colours (else
  ``ename: evalue``), and status ``error``.

This view is lossy; the nbformat outputs themselves are kept beside it
(``IpynbCellRun``) and are what the export writes.  Only a run the execution
engine wrote later (no nbformat record) is exported from the view, by the
reverse rules in ``ipynb_outputs``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from app.notebooks.schemas import Output
from app.store.notebooks import RunStatus

STDERR_MIME = "application/vnd.jupyter.stderr"
STDOUT_MIME = "application/vnd.jupyter.stdout"
# Best first; mimes not listed come after these, in the bundle's order.
MIME_ORDER = (
    "application/vnd.plotly.v1+json",
    "application/vnd.vegalite.v5+json",
    "application/vnd.vegalite.v4+json",
    "application/vnd.vegalite.v3+json",
    "application/vnd.vegalite.v2+json",
    "application/vnd.vegalite.v1+json",
    "application/vnd.vega.v5+json",
    "application/vnd.vega.v4+json",
    "application/vnd.vega.v3+json",
    "application/vnd.vega.v2+json",
    "text/html",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "image/gif",
    "text/markdown",
    "text/latex",
    "application/json",
    "text/plain",
)
_RANK = {mime: rank for rank, mime in enumerate(MIME_ORDER)}
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*): ?(.*)")
_OUTPUTS = msgspec.json.Decoder(list[Output])


class RunView(msgspec.Struct, frozen=True):
    """The API's run state derived from a cell's nbformat outputs.

    ``shown[k]`` is the index of the nbformat display or result that API
    output ``k`` shows one mime of (None for a stderr stream).
    """

    status: RunStatus
    stdout: str
    outputs: list[Output]
    error: str | None
    shown: list[int | None] = []


def run_view(outputs: list[dict[str, Any]], execution_count: int | None) -> RunView:
    """How the app shows a code cell that ran in Jupyter (see the module docstring)."""
    stdout: list[str] = []
    shown: list[Output] = []
    sources: list[int | None] = []
    error: str | None = None
    for index, output in enumerate(outputs):
        kind = output.get("output_type")
        if kind == "stream":
            if output.get("name") == "stdout":
                stdout.append(output.get("text", ""))
            else:
                shown.append(Output(mime_type=STDERR_MIME, data=output.get("text", "")))
                sources.append(None)
        elif kind in ("display_data", "execute_result"):
            data = output.get("data") or {}
            if data:
                mime = min(data, key=lambda m: _RANK.get(m, len(_RANK)))
                shown.append(Output(mime, data[mime], dict(output.get("metadata") or {})))
                sources.append(index)
        elif kind == "error" and error is None:
            traceback = [_ANSI.sub("", line) for line in output.get("traceback", [])]
            if traceback:
                error = "\n".join(traceback)
            else:
                error = f"{output.get('ename')}: {output.get('evalue')}"
    if error is not None:
        status: RunStatus = "error"
    elif outputs or execution_count is not None:
        status = "success"
    else:
        status = "idle"
    # PostgreSQL text cannot hold U+0000; the exact text is in the nbformat record.
    return RunView(
        status=status,
        stdout="".join(stdout).replace("\x00", "\ufffd"),
        outputs=shown,
        error=None if error is None else error.replace("\x00", "\ufffd"),
        shown=sources,
    )


def ipynb_outputs(stdout: str, outputs: str, error: str | None) -> list[dict[str, Any]]:
    """nbformat outputs for a run the execution engine wrote (the reverse of ``run_view``).

    The API keeps no order between ``stdout`` and the other outputs, nor
    which display was the cell's result: stdout comes first, every output is
    ``display_data``, and the error last.
    """
    result: list[dict[str, Any]] = []
    if stdout:
        result.append({"output_type": "stream", "name": "stdout", "text": stdout})
    for output in _OUTPUTS.decode(outputs):
        stream = {STDOUT_MIME: "stdout", STDERR_MIME: "stderr"}.get(output.mime_type)
        if stream is not None and isinstance(output.data, str):
            result.append({"output_type": "stream", "name": stream, "text": output.data})
            continue
        data = output.data
        if not _is_json_mime(output.mime_type) and not isinstance(data, str):
            data = msgspec.json.encode(data).decode()  # nbformat holds only text there
        result.append(
            {
                "output_type": "display_data",
                "data": {output.mime_type: data},
                "metadata": output.metadata,
            }
        )
    if error is not None:
        lines = error.split("\n")
        last = next((line for line in reversed(lines) if line.strip()), "")
        match = _EXCEPTION_LINE.fullmatch(last)
        ename, evalue = (match.group(1), match.group(2)) if match else ("Error", last)
        result.append(
            {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines}
        )
    return result


def _is_json_mime(mime: str) -> bool:
    """nbformat's rule (``rwbase._is_json_mime``): these mimes hold any JSON value."""
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )
