"""Notebooks for the .ipynb tests (SPEC §12), built here with nbformat rather than downloaded.

``VALID`` documents must come back equal after nbformat's read; ``V3``
documents are upgraded on the way in; ``REPAIRED`` ones import with the
warnings given; ``BROKEN`` ones are refused naming the place.  No installed
package ships notebooks (nbformat's and jupyter_server's test notebooks stay
in their source trees), so everything is made from nbformat's own
constructors (``nbformat.v4.new_*``, ``nbformat.v3.new_*``) and, where a
document must be something those refuse to make, from plain JSON.

Every builder returns the document's text; ``write_corpus`` puts them in a
folder (for the CLI and the benchmark).  The comparison helpers at the end
(``as_read``, ``without_ids``, ``stored``) are what every .ipynb test, unit,
API or CLI, compares with: SPEC §12's "equal as JSON after nbformat's read".
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import struct
import zlib
from typing import TYPE_CHECKING, Any

import msgspec
import nbformat
from nbformat import v3, v4

from app.ipynb.convert import nbformat_id
from app.ipynb.schemas import IpynbImport, IpynbNotebookExtra
from app.notebooks.schemas import StoredCell
from app.store.notebooks import RunState

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

PYTHON = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {
        "codemirror_mode": {"name": "ipython", "version": 3},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
        "version": "3.11.7",
    },
}
JULIA = {
    "kernelspec": {"display_name": "Julia 1.10.0", "language": "julia", "name": "julia-1.10"},
    "language_info": {
        "file_extension": ".jl",
        "mimetype": "application/julia",
        "name": "julia",
        "version": "1.10.0",
    },
}
R = {
    "kernelspec": {"display_name": "R", "language": "R", "name": "ir"},
    "language_info": {
        "codemirror_mode": "r",
        "file_extension": ".r",
        "mimetype": "text/x-r-source",
        "name": "R",
        "pygments_lexer": "r",
        "version": "4.3.2",
    },
}
ANSI_TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mZeroDivisionError\x1b[0m                         Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[3], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m \x1b[38;5;241m1\x1b[39m"
    "\x1b[38;5;241m/\x1b[39m\x1b[38;5;241m0\x1b[39m\n",
    "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
]


def png(seed: int, side: int = 8) -> str:
    """A real PNG of ``side`` x ``side`` noise, base64 with a final newline as Jupyter stores it."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    image = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(image).decode() + "\n"


def _write(notebook: Any) -> str:
    """Jupyter's JSON, with ids made from position and source (the same on every build)."""
    for index, cell in enumerate(notebook.cells):
        cell.id = hashlib.sha256(f"{index}:{cell.source}".encode()).hexdigest()[:8]
    return str(nbformat.writes(notebook))


# -- valid nbformat 4 ------------------------------------------------------------------------------


def every_output_type() -> str:
    notebook = v4.new_notebook(metadata=copy.deepcopy(PYTHON))
    notebook.cells = [
        v4.new_markdown_cell("# Every output type"),
        v4.new_code_cell(
            "import sys\nprint('hello')\nprint('careful', file=sys.stderr)\nx = 41 + 1\nx",
            execution_count=1,
            outputs=[
                v4.new_output("stream", name="stdout", text="hello\n"),
                v4.new_output("stream", name="stderr", text="careful\n"),
                v4.new_output(
                    "execute_result",
                    execution_count=1,
                    data={"text/plain": "42"},
                    metadata={},
                ),
            ],
        ),
        v4.new_code_cell(
            "plt.plot([1, 2, 3])",
            execution_count=2,
            outputs=[
                v4.new_output(
                    "execute_result",
                    execution_count=2,
                    data={"text/plain": "[<matplotlib.lines.Line2D at 0x7f>]"},
                ),
                v4.new_output(
                    "display_data",
                    data={
                        "image/png": png(1, 16),
                        "text/plain": "<Figure size 640x480 with 1 Axes>",
                    },
                    metadata={
                        "image/png": {"width": 640, "height": 480},
                        "needs_background": "light",
                    },
                ),
            ],
        ),
        v4.new_code_cell(
            "1 / 0",
            execution_count=3,
            outputs=[
                v4.new_output(
                    "error",
                    ename="ZeroDivisionError",
                    evalue="division by zero",
                    traceback=ANSI_TRACEBACK,
                )
            ],
        ),
        v4.new_code_cell(
            "df",
            execution_count=4,
            outputs=[
                v4.new_output(
                    "execute_result",
                    execution_count=4,
                    data={
                        "text/html": "<table>\n<tr><td>1</td></tr>\n</table>\n",
                        "text/plain": "   a\n0  1",
                        "text/markdown": "| a |\n|---|\n| 1 |",
                        "text/latex": "$\\alpha$",
                        "application/json": {"a": [1, 2.5, None, True, "x"]},
                    },
                    metadata={"application/json": {"expanded": False, "root": "root"}},
                )
            ],
        ),
        v4.new_code_cell(
            "display(SVG(svg)); display(Javascript('console.log(1)'))",
            execution_count=5,
            outputs=[
                v4.new_output(
                    "display_data",
                    data={
                        "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg">\n<rect/>\n</svg>',
                        "image/jpeg": "/9j/4AAQSkZJRgABAQ==\n",
                        "text/plain": "<IPython.core.display.SVG object>",
                    },
                ),
                v4.new_output(
                    "display_data",
                    data={
                        "application/javascript": "console.log(1)\nconsole.log(2)",
                        "text/plain": "<IPython.core.display.Javascript object>",
                    },
                ),
            ],
        ),
        v4.new_code_cell("x = 1  # ran, printed nothing", execution_count=6),
        v4.new_code_cell("never_ran = True"),
        v4.new_raw_cell(".. raw:: rst", metadata={"raw_mimetype": "text/restructuredtext"}),
    ]
    return _write(notebook)


def widgets() -> str:
    model = "3f4c8e0a6d0e4d8b9d1f1b2a3c4d5e6f"
    state = {
        model: {
            "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0",
            "model_name": "IntSliderModel",
            "state": {"value": 7, "max": 10, "layout": "IPY_MODEL_abc", "description": "n"},
        }
    }
    metadata = copy.deepcopy(PYTHON)
    metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "state": state,
            "version_major": 2,
            "version_minor": 0,
        }
    }
    notebook = v4.new_notebook(metadata=metadata)
    notebook.cells = [
        v4.new_code_cell(
            "import ipywidgets as w\nslider = w.IntSlider(value=7, max=10)\nslider",
            execution_count=1,
            outputs=[
                v4.new_output(
                    "display_data",
                    data={
                        "application/vnd.jupyter.widget-view+json": {
                            "model_id": model,
                            "version_major": 2,
                            "version_minor": 0,
                        },
                        "text/plain": "IntSlider(value=7, max=10)",
                    },
                )
            ],
        ),
        v4.new_code_cell("slider.value", execution_count=2, metadata={"tags": ["widget"]}),
    ]
    return _write(notebook)


def plots() -> str:
    vegalite = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": [{"a": "A", "b": 28}, {"a": "B", "b": 55}]},
        "mark": "bar",
        "encoding": {"x": {"field": "a", "type": "nominal"}, "y": {"field": "b"}},
    }
    plotly = {
        "data": [{"type": "scatter", "x": [1, 2, 3], "y": [2, 1, 3], "mode": "lines"}],
        "layout": {"title": {"text": "π ≈ 3.14"}, "template": {"layout": {"font": {"size": 12}}}},
        "config": {"plotlyServerURL": "https://plot.ly"},
    }
    notebook = v4.new_notebook(metadata=copy.deepcopy(PYTHON))
    notebook.cells = [
        v4.new_code_cell(
            "alt.Chart(data).mark_bar()",
            execution_count=1,
            outputs=[
                v4.new_output(
                    "execute_result",
                    execution_count=1,
                    data={
                        "application/vnd.vegalite.v5+json": vegalite,
                        "text/html": '<div id="altair-viz"></div>',
                        "text/plain": "alt.Chart(...)",
                    },
                )
            ],
        ),
        v4.new_code_cell(
            "fig.show()",
            execution_count=2,
            outputs=[
                v4.new_output(
                    "display_data",
                    data={
                        "application/vnd.plotly.v1+json": plotly,
                        "text/html": '<div class="plotly"></div>',
                    },
                    metadata={"application/vnd.plotly.v1+json": {"config": {"responsive": True}}},
                )
            ],
        ),
        v4.new_code_cell(
            "vega",
            execution_count=3,
            outputs=[
                v4.new_output(
                    "display_data",
                    data={"application/vnd.vega.v5+json": {"marks": [], "width": 400}},
                )
            ],
        ),
    ]
    return _write(notebook)


def attachments() -> str:
    notebook = v4.new_notebook(metadata=copy.deepcopy(PYTHON))
    notebook.cells = [
        v4.new_markdown_cell(
            "A pasted picture: ![logo](attachment:logo.png)",
            attachments={"logo.png": {"image/png": png(7)}},
        ),
        v4.new_markdown_cell("No attachments, but the key is there.", attachments={}),
        v4.new_raw_cell(
            "raw with an attachment",
            attachments={"notes.txt": {"text/plain": "line 1\nline 2\n"}},
        ),
    ]
    return _write(notebook)


def unicode_rtl() -> str:
    notebook = v4.new_notebook(metadata={**copy.deepcopy(PYTHON), "title": "دفتر ملاحظات"})
    notebook.cells = [
        v4.new_markdown_cell("# שלום עולם\nمرحبا بالعالم — ‏RTL‏ with ‮override‬ and emoji 🧪🐍"),  # noqa: RUF001
        v4.new_code_cell(
            "名前 = 'π'\nprint(名前 * 3)  # ‫עברית‬",
            execution_count=1,
            outputs=[v4.new_output("stream", name="stdout", text="πππ\n")],
            metadata={"note": "Ünïcödé ✓", "tags": ["日本語"]},
        ),
        v4.new_code_cell(
            "s = '\\u200f\\u202e\\ud83d\\ude00'",
            execution_count=2,
            outputs=[
                v4.new_output(
                    "execute_result",
                    execution_count=2,
                    data={"text/plain": "'\u200f\u202e😀'"},
                )
            ],
        ),
    ]
    return _write(notebook)


def thousand_cells() -> str:
    notebook = v4.new_notebook(metadata=copy.deepcopy(PYTHON))
    cells = []
    for index in range(1000):
        if index % 10 == 0:
            cells.append(v4.new_markdown_cell(f"## Step {index}"))
        else:
            cells.append(
                v4.new_code_cell(
                    f"x{index} = x{index - 1} + 1" if index > 1 else "x1 = 0",
                    execution_count=index,
                    outputs=[v4.new_output("stream", name="stdout", text=f"{index}\n")]
                    if index % 3 == 0
                    else [],
                )
            )
    notebook.cells = cells
    return _write(notebook)


def four_mb_images(count: int = 150) -> str:
    """About 4 MB: ``count`` matplotlib-like figures of noise, each ≈ 27 KB of base64."""
    notebook = v4.new_notebook(metadata=copy.deepcopy(PYTHON))
    notebook.cells = [
        v4.new_code_cell(
            f"fig, ax = plt.subplots()\nax.plot(data[{index}])",
            execution_count=index + 1,
            outputs=[
                v4.new_output(
                    "display_data",
                    data={"image/png": png(index, 82), "text/plain": "<Figure size 640x480>"},
                    metadata={"needs_background": "light"},
                )
            ],
        )
        for index in range(count)
    ]
    return _write(notebook)


def julia() -> str:
    notebook = v4.new_notebook(metadata=copy.deepcopy(JULIA))
    notebook.cells = [
        v4.new_markdown_cell("Julia, not Python"),
        v4.new_code_cell(
            "x = [1, 2, 3]\nprintln(sum(x))",
            execution_count=1,
            outputs=[v4.new_output("stream", name="stdout", text="6\n")],
        ),
        v4.new_code_cell(
            "f(x) = x^2\nf.(x)",
            execution_count=2,
            outputs=[
                v4.new_output(
                    "execute_result",
                    execution_count=2,
                    data={"text/plain": "3-element Vector{Int64}:\n 1\n 4\n 9"},
                )
            ],
        ),
    ]
    return _write(notebook)


def r_kernel() -> str:
    notebook = v4.new_notebook(metadata=copy.deepcopy(R))
    notebook.cells = [
        v4.new_code_cell(
            "x <- c(1, 2, 3)\nsummary(x)",
            execution_count=1,
            outputs=[
                v4.new_output(
                    "display_data",
                    data={
                        "text/html": "<table><tr><td>2</td></tr></table>",
                        "text/plain": "   Min. 1st Qu.  Median \n      1       1.5     2",
                        "text/latex": "\\begin{tabular}{l}2\\end{tabular}",
                    },
                )
            ],
        )
    ]
    return _write(notebook)


def magics() -> str:
    notebook = v4.new_notebook(metadata=copy.deepcopy(PYTHON))
    notebook.cells = [
        v4.new_code_cell("%matplotlib inline\nimport numpy as np"),
        v4.new_code_cell("files = !ls {folder}\n%time total = len(files)"),
        v4.new_code_cell("%%bash\necho $HOME"),
        v4.new_code_cell("np.arange?"),
    ]
    return _write(notebook)


def cellar_export() -> str:
    """What Cellar writes for its own notebooks: sql and python cells tagged in metadata."""
    notebook = v4.new_notebook(
        metadata={
            "kernelspec": {
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "name": "python3",
            },
            "language_info": {"name": "python"},
            "title": "Made in Cellar",
        }
    )
    notebook.cells = [
        v4.new_code_cell("x = 10", metadata={"cellar": {"type": "python"}}),
        v4.new_code_cell("SELECT * FROM t WHERE a > {x}", metadata={"cellar": {"type": "sql"}}),
        v4.new_code_cell(
            "y = x + 5",
            metadata={"cellar": {"type": "python", "id": "legacy.cell/1"}},
        ),
    ]
    document = json.loads(_write(notebook))
    document["cells"][2]["id"] = nbformat_id("legacy.cell/1")
    return json.dumps(document, indent=1)


def empty() -> str:
    return _write(v4.new_notebook())


def source_as_strings() -> str:
    """nbformat writes sources as lists of lines; files written by other tools use strings."""
    notebook = v4.new_notebook(metadata=copy.deepcopy(PYTHON))
    notebook.cells = [
        v4.new_code_cell(
            "a = 1\nb = a + 1\n",
            execution_count=1,
            outputs=[
                v4.new_output("stream", name="stdout", text="one\ntwo\n"),
                v4.new_output("display_data", data={"text/html": "<p>\n1\n</p>"}),
            ],
        ),
        v4.new_markdown_cell("line 1\nline 2"),
    ]
    for index, cell in enumerate(notebook.cells):
        cell.id = f"strings-{index}"
    return str(nbformat.v4.writes(notebook, split_lines=False))


def older_minor(minor: int) -> Callable[[], str]:
    """A 4.``minor`` notebook (no cell ids before 4.5), as Jupyter of that time wrote it."""

    def build() -> str:
        document = json.loads(every_output_type())
        document["nbformat_minor"] = minor
        for cell in document["cells"]:
            del cell["id"]
            if minor < 1:
                cell.pop("attachments", None)
        return json.dumps(document, indent=1)

    build.__name__ = f"minor_{minor}"
    return build


def future_minor() -> str:
    """A 4.9 notebook with keys today's schema does not know: kept as they are."""
    document = json.loads(every_output_type())
    document["nbformat_minor"] = 9
    document["provenance"] = {"tool": "future-lab"}
    document["cells"][1]["collapsed_outputs"] = [0, 2]
    return json.dumps(document, indent=1)


def no_kernel() -> str:
    notebook = v4.new_notebook()
    notebook.cells = [v4.new_code_cell("x = 1"), v4.new_code_cell("y = x")]
    return _write(notebook)


VALID: dict[str, Callable[[], str]] = {
    "every_output_type": every_output_type,
    "widgets": widgets,
    "plots": plots,
    "attachments": attachments,
    "unicode_rtl": unicode_rtl,
    "thousand_cells": thousand_cells,
    "four_mb_images": four_mb_images,
    "julia": julia,
    "r_kernel": r_kernel,
    "magics": magics,
    "cellar_export": cellar_export,
    "empty": empty,
    "source_as_strings": source_as_strings,
    "minor_0": older_minor(0),
    "minor_1": older_minor(1),
    "minor_2": older_minor(2),
    "minor_3": older_minor(3),
    "minor_4": older_minor(4),
    "future_minor": future_minor,
    "no_kernel": no_kernel,
}


# -- nbformat 3 ----------------------------------------------------------------------------------


def v3_notebook() -> str:
    cells = [
        v3.new_heading_cell("A v3 notebook", level=1),
        v3.new_text_cell("markdown", source="Some *markdown*, ünïcödé."),
        v3.new_code_cell(
            input="print('hi')\n1 + 1",
            prompt_number=1,
            outputs=[
                v3.new_output("stream", output_text="hi\n", stream="stdout"),
                v3.new_output("pyout", output_text="2", prompt_number=1),
            ],
        ),
        v3.new_code_cell(
            input="plot()",
            prompt_number=2,
            outputs=[
                v3.new_output(
                    "display_data",
                    output_png=png(3).strip(),
                    output_text="<Figure>",
                    output_html="<b>fig</b>",
                )
            ],
        ),
        v3.new_code_cell(
            input="1/0",
            prompt_number=3,
            outputs=[
                v3.new_output(
                    "pyerr",
                    ename="ZeroDivisionError",
                    evalue="integer division or modulo by zero",
                    traceback=ANSI_TRACEBACK,
                )
            ],
        ),
        v3.new_text_cell("raw", source="raw text"),
    ]
    notebook = v3.new_notebook(
        name="old", worksheets=[v3.new_worksheet(cells=cells)], metadata=v3.new_metadata()
    )
    return str(v3.writes_json(notebook))


def v3_empty() -> str:
    return str(v3.writes_json(v3.new_notebook(worksheets=[v3.new_worksheet(cells=[])])))


V3: dict[str, Callable[[], str]] = {"v3_notebook": v3_notebook, "v3_empty": v3_empty}


# -- repaired and refused ------------------------------------------------------------------------


def _edit(
    edit: Callable[[dict[str, Any]], None], base: Callable[[], str] = every_output_type
) -> str:
    document = json.loads(base())
    edit(document)
    return json.dumps(document)


def ids_missing() -> str:
    def edit(document: dict[str, Any]) -> None:
        del document["cells"][0]["id"]
        del document["cells"][3]["id"]

    return _edit(edit)


def ids_duplicated() -> str:
    def edit(document: dict[str, Any]) -> None:
        document["cells"][2]["id"] = document["cells"][1]["id"]
        document["cells"][4]["id"] = document["cells"][1]["id"]

    return _edit(edit)


def ids_invalid() -> str:
    def edit(document: dict[str, Any]) -> None:
        document["cells"][0]["id"] = "has spaces.and dots"
        document["cells"][1]["id"] = "x" * 65
        document["cells"][2]["id"] = ""
        document["cells"][3]["id"] = 17

    return _edit(edit)


def unknown_keys() -> str:
    def edit(document: dict[str, Any]) -> None:
        document["cells"][1]["outputs"][0]["extra"] = 1
        document["cells"][2]["collapsed"] = True
        document["cells"][0]["outputs"] = []
        document["mystery"] = {}

    return _edit(edit)


def invalid_metadata() -> str:
    def edit(document: dict[str, Any]) -> None:
        document["metadata"]["kernelspec"] = {"name": 3}  # two errors in one key
        document["cells"][1]["metadata"]["collapsed"] = "yes"
        document["cells"][2]["metadata"]["trusted"] = True
        document["metadata"]["signature"] = "sha256:abc"

    return _edit(edit)


def ids_in_minor_4() -> str:
    def edit(document: dict[str, Any]) -> None:
        document["nbformat_minor"] = 4

    return _edit(edit)


def missing_keys() -> str:
    def edit(document: dict[str, Any]) -> None:
        del document["metadata"]
        del document["cells"][0]["metadata"]
        del document["cells"][1]["outputs"]
        del document["cells"][1]["execution_count"]
        del document["cells"][2]["source"]

    return _edit(edit)


def not_a_number() -> str:
    text = every_output_type()
    return text.replace('"expanded": false', '"expanded": NaN, "depth": -Infinity')


# name → (document, warnings expected: each a substring of one warning, in order)
REPAIRED: dict[str, tuple[Callable[[], str], list[str]]] = {
    "ids_missing": (ids_missing, ["cells[0]: id missing", "cells[3]: id missing"]),
    "ids_duplicated": (
        ids_duplicated,
        ["cells[2]: id 'be373f31' is also cells[1]'s", "cells[4]: id 'be373f31' is also"],
    ),
    "ids_invalid": (
        ids_invalid,
        [
            "cells[0]: id 'has spaces.and dots' is not an nbformat cell id",
            "cells[1]: id 'xxxx",
            "cells[2]: id '' is not",
            "cells[3]: id 17 is not",
        ],
    ),
    "unknown_keys": (
        unknown_keys,
        [
            "notebook: key 'mystery' is not in nbformat 4.5; dropped",
            "cells[0]: key 'outputs' is not in nbformat 4.5; dropped",
            "cells[1].outputs[0]: key 'extra' is not in nbformat 4.5; dropped",
            "cells[2]: key 'collapsed' is not in nbformat 4.5; dropped",
        ],
    ),
    "invalid_metadata": (
        invalid_metadata,
        [
            "metadata.signature: dropped, as nbformat does",
            "cells[2].metadata.trusted: dropped, as nbformat does",
            "metadata.kernelspec: ",
            "cells[1].metadata.collapsed: 'yes' is not of type 'boolean'; dropped",
        ],
    ),
    "ids_in_minor_4": (
        ids_in_minor_4,
        [f"cells[{i}]: key 'id' is not in nbformat 4.4; dropped" for i in range(9)],
    ),
    "missing_keys": (
        missing_keys,
        [
            "metadata: missing; an empty one was made",
            "cells[0].metadata: missing; an empty one was made",
            "cells[1].outputs: missing; an empty one was made",
            "cells[1].execution_count: missing; an empty one was made",
            "cells[2].source: missing; an empty one was made",
        ],
    ),
    "not_a_number": (not_a_number, ["2 NaN/Infinity value(s)"]),
}


def _json(document: Any) -> bytes:
    return json.dumps(document).encode()


def _cells(*cells: Any, nbformat_minor: int = 5) -> bytes:
    return _json(
        {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": nbformat_minor}
    )


_CODE = {"cell_type": "code", "id": "a", "metadata": {}, "source": "", "execution_count": None}

# name → (body, the start of the error: "<where>: <problem>")
BROKEN: dict[str, tuple[bytes, str]] = {
    "not_utf8": (b'{"cells": "\xff"}', "notebook: not UTF-8 text"),
    "not_json": (b"{'cells': []}", "notebook: not JSON: Expecting property name"),
    "truncated": (every_output_type().encode()[:200], "notebook: not JSON"),
    "array": (b"[]", "notebook: expected a JSON object, got a list"),
    "no_nbformat": (b'{"cells": []}', "nbformat: missing"),
    "nbformat_string": (b'{"nbformat": "4", "cells": []}', "nbformat: expected an integer"),
    "nbformat_1": (_json({"nbformat": 1, "cells": []}), "nbformat: version 1 is not supported"),
    "nbformat_2": (
        _json({"nbformat": 2, "worksheets": []}),
        "nbformat: version 2 is not supported",
    ),
    "nbformat_5": (_json({"nbformat": 5, "cells": []}), "nbformat: version 5 is not supported"),
    "no_minor": (_json({"nbformat": 4, "cells": [], "metadata": {}}), "nbformat_minor: missing"),
    "no_cells": (_json({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}), "cells: missing"),
    "cells_object": (
        _json({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": {}}),
        "cells: expected a list, got an object",
    ),
    "cell_string": (_cells("x = 1"), "cells[0]: expected an object, got a string"),
    "outputs_object": (_cells({**_CODE, "outputs": {}}), "cells[0].outputs: expected a list"),
    "output_number": (_cells({**_CODE, "outputs": [3]}), "cells[0].outputs[0]: expected an object"),
    "source_numbers": (
        _cells({**_CODE, "source": [1, 2], "outputs": []}),
        "cells[0].source: expected a string or a list of strings",
    ),
    "stream_text_number": (
        _cells({**_CODE, "outputs": [{"output_type": "stream", "name": "stdout", "text": 5}]}),
        "cells[0].outputs[0].text: expected a string or a list of strings",
    ),
    "outputs_null": (
        _cells({**_CODE, "outputs": None}),
        "cells[0].outputs: expected a list, got null",
    ),
    "attachments_null": (
        _cells(
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "", "attachments": None}
        ),
        "cells[0].attachments: expected an object, got null",
    ),
    "metadata_list": (
        _cells({**_CODE, "metadata": [], "outputs": []}),
        "cells[0].metadata: expected an object",
    ),
    "update_display_data": (
        _cells(
            {
                **_CODE,
                "outputs": [
                    {
                        "output_type": "update_display_data",
                        "data": {"text/plain": "x"},
                        "metadata": {},
                        "transient": {"display_id": "d"},
                    }
                ],
            }
        ),
        "cells[0].outputs[0]: output_type 'update_display_data' is not one nbformat 4 files hold",
    ),
    "future_cell_type": (
        _cells(
            {**_CODE, "outputs": []},
            {"cell_type": "future cell", "id": "f", "metadata": {}, "key": "value"},
            nbformat_minor=99,
        ),
        "cells[1]: cell_type 'future cell' is not one Cellar can keep",
    ),
    "heading_cell_in_v4": (
        _cells({"cell_type": "heading", "id": "h", "metadata": {}, "source": "# x", "level": 1}),
        "cells[0]: cell_type 'heading' is not one nbformat 4 has",
    ),
    "stream_without_name": (
        _cells({**_CODE, "outputs": [{"output_type": "stream", "text": "x"}]}),
        "cells[0].outputs[0]: 'name' is a required property",
    ),
    "execution_count_text": (
        _cells({**_CODE, "execution_count": "one", "outputs": []}),
        "cells[0].execution_count: 'one' is not of type 'integer', 'null'",
    ),
    "nul_in_source": (
        _cells({**_CODE, "source": "x = '\x00'", "outputs": []}),
        "cells[0].source: contains U+0000",
    ),
    "nul_in_metadata": (
        _cells({**_CODE, "metadata": {"k": "\x00"}, "outputs": []}),
        "cells[0].metadata: contains U+0000",
    ),
    "lone_surrogate": (
        b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {"a": "\\ud800"}, "cells": []}',
        "notebook: contains an unpaired UTF-16 surrogate",
    ),
    "deep_json": (b"[" * 100_000 + b"]" * 100_000, "notebook: JSON nested too deeply"),
    "v3_no_worksheets": (
        _json({"nbformat": 3, "nbformat_minor": 0, "metadata": {}}),
        "worksheets: missing: an nbformat 3 notebook has a list of worksheets",
    ),
    "v3_cells_not_list": (
        _json({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": 3}]}),
        "worksheets[0].cells: expected a list",
    ),
}


def write_corpus(folder: Path) -> list[Path]:
    """Every valid, v3 and repaired document as ``<name>.ipynb`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    builders: dict[str, Callable[[], str]] = {**VALID, **V3}
    builders.update({name: build for name, (build, _) in REPAIRED.items()})
    paths = []
    for name, build in builders.items():
        path = folder / f"{name}.ipynb"
        path.write_text(build(), encoding="utf-8")
        paths.append(path)
    return paths


# -- comparing -----------------------------------------------------------------------------------


def as_read(text: str | bytes, as_version: Any = nbformat.NO_CONVERT) -> Any:
    """nbformat's own read, as plain JSON values."""
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(json.dumps(nbformat.reads(text, as_version=as_version)))


def without_ids(document: Any) -> Any:
    """The document without cell ids and the upgrade's ``orig_nbformat`` keys."""
    for cell in document["cells"]:
        cell.pop("id", None)
    for key in ("orig_nbformat", "orig_nbformat_minor"):
        document["metadata"].pop(key, None)
    return document


def runs_of(imported: IpynbImport | list[RunState]) -> dict[str, RunState]:
    """Run states by cell id."""
    runs = imported.runs if isinstance(imported, IpynbImport) else imported
    return {run.cell_id: run for run in runs}


Stored = tuple[list[StoredCell], dict[str, RunState], IpynbNotebookExtra]


def stored(imported: IpynbImport) -> Stored:
    """The pieces as storage gives them back (JSON columns, decoded to their Structs)."""
    return (
        msgspec.json.decode(msgspec.json.encode(imported.cells), type=list[StoredCell]),
        runs_of(msgspec.json.decode(msgspec.json.encode(imported.runs), type=list[RunState])),
        msgspec.json.decode(msgspec.json.encode(imported.extra), type=IpynbNotebookExtra),
    )
