"""Notebooks for the .ipynb benchmarks (SPEC §12), built from the tests' corpus.

``tests/ipynb_corpus.py`` builds every kind of notebook the tests import
(with nbformat's own constructors); the benchmarks use the same builders, so
what is measured is what is tested:

* ``images_notebook()``: the 4 MB notebook of 150 PNG figures that
  ``bench/run.py --only ipynb_import,ipynb_export`` imports and exports;
* ``mixed_folder(dir, count)``: ``count`` notebooks as a user's folder holds
  them (``bench/ipynb_import.py``): mostly ordinary analysis notebooks of 5
  to 40 cells with text, tables, small figures and the odd error, then the
  corpus' special cases (every output type, widgets, plots, unicode, magics,
  Julia and R, v3, older minors, ids to repair), a 1,000-cell notebook one
  in 200 and the 4 MB one one in 500.  Deterministic for a seed.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
from nbformat import v4

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import ipynb_corpus as corpus  # noqa: E402  (the repository's root, above)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["images_notebook", "mixed_folder"]

SPECIAL: dict[str, Callable[[], str]] = {
    **{name: build for name, build in corpus.VALID.items() if name != "four_mb_images"},
    **corpus.V3,
    **{name: build for name, (build, _) in corpus.REPAIRED.items()},
}


def images_notebook() -> str:
    """About 4 MB: 150 figures (PNG, ≈ 27 KB of base64 each), as Jupyter writes it."""
    return corpus.four_mb_images(150)


def ordinary(rng: random.Random, index: int) -> str:
    """An analysis notebook: markdown and code, outputs of the usual kinds."""
    cells = [v4.new_markdown_cell(f"# Analysis {index}\n\nLoading and plotting *run {index}*.")]
    for step in range(rng.randint(5, 40)):
        kind = rng.random()
        if kind < 0.2:
            cells.append(v4.new_markdown_cell(f"## Step {step}\nNotes on step {step}: ünïcode ✓"))
            continue
        source = f"df_{step} = load('part-{step}.csv')\ndf_{step}.describe()"
        outputs = []
        if kind < 0.6:
            outputs.append(
                v4.new_output(
                    "execute_result", data={"text/plain": f"{step * 7}"}, execution_count=step
                )
            )
        elif kind < 0.75:
            rows = "".join(f"<tr><td>{i}</td><td>{i * step}</td></tr>" for i in range(10))
            outputs.append(
                v4.new_output(
                    "execute_result",
                    data={"text/html": f"<table>{rows}</table>", "text/plain": "table"},
                    execution_count=step,
                )
            )
        elif kind < 0.9:
            outputs.append(v4.new_output("stream", name="stdout", text=f"step {step} done\n"))
            outputs.append(
                v4.new_output(
                    "display_data",
                    data={
                        "image/png": corpus.png(index * 100 + step, 24),
                        "text/plain": "<Figure>",
                    },
                )
            )
        elif kind < 0.95:
            outputs.append(
                v4.new_output(
                    "error",
                    ename="KeyError",
                    evalue=f"'col_{step}'",
                    traceback=[*corpus.ANSI_TRACEBACK[:2], f"KeyError: 'col_{step}'"],
                )
            )
        cells.append(v4.new_code_cell(source, execution_count=step + 1, outputs=outputs))
    notebook = v4.new_notebook(cells=cells, metadata=dict(corpus.PYTHON))
    return str(nbformat.writes(notebook))


def mixed_folder(directory: Path, count: int = 1000, seed: int = 1) -> int:
    """Write ``count`` notebooks into ``directory``; the total bytes written."""
    rng = random.Random(seed)
    special = sorted(SPECIAL)
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for index in range(count):
        if index % 500 == 499:
            text = images_notebook()
        elif index % 200 == 99:
            text = corpus.thousand_cells()
        elif rng.random() < 0.3:
            text = SPECIAL[special[index % len(special)]]()
        else:
            text = ordinary(rng, index)
        path = directory / f"notebook-{index:04d}.ipynb"
        path.write_text(text, encoding="utf-8")
        written += len(text.encode())
    return written
