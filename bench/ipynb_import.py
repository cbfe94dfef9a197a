"""How fast does ``cellar import-ipynb`` import a folder of notebooks? (SPEC §12)

What it measures
----------------
Notebooks per second of ``cellar import-ipynb DIR --owner EMAIL`` on a
folder of ``--notebooks`` mixed .ipynb files (default 1,000; see
``bench/ipynb_notebooks.py``), run as an operator runs it: the real console
script, as a subprocess, against a scratch PostgreSQL database.  Then the
same folder again (every file imported before: nothing parsed or written),
and ``cellar export-ipynb`` of everything.  Goal: at least 200 notebooks/s
for the first import.

It prints, for each run, the command's own summary line (its rate excludes
process start-up and connecting) and the wall-clock rate of the whole process.

Where the database comes from
-----------------------------
A scratch database created on ``--pg-url`` (default ``TEST_DATABASE_URL`` or
``postgresql://postgres@127.0.0.1:5432/postgres``), migrated with
``piccolo migrations forwards all`` and dropped at the end (``--keep`` keeps
it and the files)::

    python bench/ipynb_import.py
    python bench/ipynb_import.py --notebooks 5000 --seed 2
"""

from __future__ import annotations

import asyncio
import sys

from ipynb_notebooks import mixed_folder
from legacy_import import VENV_BIN, _admin, arguments, measure, scratch

OWNER = "ipynb-bench@bench.invalid"


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], 1000)
    with scratch(args, "ipynb") as (env, directory):
        asyncio.run(_admin(env["DATABASE_URL"], f"INSERT INTO users (email) VALUES ('{OWNER}')"))
        size = mixed_folder(directory / "in", args.notebooks, args.seed)
        print(f"corpus: {args.notebooks} files, {size / 1e6:.1f} MB in {directory / 'in'}")
        cellar = str(VENV_BIN / "cellar")
        source = str(directory / "in")
        measure(
            [
                ("import", [cellar, "import-ipynb", source, "--owner", OWNER]),
                ("re-import (unchanged)", [cellar, "import-ipynb", source, "--owner", OWNER]),
                ("export", [cellar, "export-ipynb", str(directory / "out"), "--user", OWNER]),
            ],
            env,
            args.notebooks,
        )


if __name__ == "__main__":
    sys.exit(main())
