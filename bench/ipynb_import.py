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

import argparse
import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet
from ipynb_notebooks import mixed_folder
from legacy_import import VENV_BIN, _admin, run, with_database

OWNER = "ipynb-bench@bench.invalid"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    args = parser.parse_args()

    database = f"cellar_bench_ipynb_{secrets.token_hex(4)}"
    directory = Path(tempfile.mkdtemp(prefix="cellar-ipynb-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": with_database(args.pg_url, database),
        "APP_SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    asyncio.run(_admin(args.pg_url, f'CREATE DATABASE "{database}"'))
    try:
        subprocess.run(
            [str(VENV_BIN / "piccolo"), "migrations", "forwards", "all"],
            env=env,
            capture_output=True,
            check=True,
        )
        asyncio.run(_admin(env["DATABASE_URL"], f"INSERT INTO users (email) VALUES ('{OWNER}')"))
        size = mixed_folder(directory / "in", args.notebooks, args.seed)
        print(f"corpus: {args.notebooks} files, {size / 1e6:.1f} MB in {directory / 'in'}")
        cellar = str(VENV_BIN / "cellar")
        source = str(directory / "in")
        for label, command in (
            ("import", [cellar, "import-ipynb", source, "--owner", OWNER]),
            ("re-import (unchanged)", [cellar, "import-ipynb", source, "--owner", OWNER]),
            ("export", [cellar, "export-ipynb", str(directory / "out"), "--user", OWNER]),
        ):
            elapsed, summary = run(command, env)
            rate = re.search(r"\((\d+) notebooks/s\)", summary)
            print(f"{label}: {summary}")
            print(
                f"{label}: wall clock {elapsed:.2f} s for the whole process = "
                f"{args.notebooks / elapsed:.0f} notebooks/s (command's own rate: "
                f"{rate.group(1) if rate else '?'} notebooks/s)"
            )
    finally:
        if args.keep:
            print(f"kept database {database} and {directory}")
        else:
            asyncio.run(_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
