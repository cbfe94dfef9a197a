"""How fast does ``cellar import-legacy`` import a legacy file store? (SPEC §8)

What it measures
----------------
Notebooks per second of ``cellar import-legacy DIR`` on a generated store of
``--notebooks`` files (default 5,000), run as an operator runs it: the real
console script, as a subprocess, against a scratch PostgreSQL database.  Then
the same directory again (every file unchanged: nothing written), and
``cellar export-legacy`` of everything.  Goal: at least 500 notebooks/s for
the first import on a developer machine with a local PostgreSQL.

It prints, for each run, the command's own summary line (its rate excludes
process start-up and connecting) and the wall-clock rate of the whole process.

The corpus
----------
Deterministic (``--seed``).  One user in three has a ``demo-<user>`` and a
``blank-<user>`` file without ``user_id`` (the owner comes from the id); the
other files have UUID ids and a ``user_id``.  Notebooks have 1 to 20 cells of
python, sql and markdown, with reads/writes as the legacy app wrote them;
about a third of the cells ran, with text, plotly-like JSON or a small base64
PNG as outputs; one file in 500 has 300 cells.

Where the database comes from
-----------------------------
A scratch database created on ``--pg-url`` (default ``TEST_DATABASE_URL`` or
``postgresql://postgres@127.0.0.1:5432/postgres``), migrated with
``piccolo migrations forwards all`` and dropped at the end (``--keep`` keeps
it and the files)::

    python bench/legacy_import.py
    python bench/legacy_import.py --notebooks 10000 --seed 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from cryptography.fernet import Fernet

if TYPE_CHECKING:
    from collections.abc import Iterator

VENV_BIN = Path(sys.executable).parent


def generate(directory: Path, count: int, seed: int) -> int:
    """Write ``count`` legacy files into ``directory``; returns the total bytes written."""
    rng = random.Random(seed)
    png = base64.b64encode(rng.randbytes(1500)).decode()
    written = 0
    made = 0
    user_index = 0
    while made < count:
        user = f"user_{user_index:06d}{rng.getrandbits(40):010x}"
        user_index += 1
        ids: list[tuple[str, str | None]]
        if user_index % 3 == 0 and count - made >= 2:
            ids = [(f"demo-{user}", None), (f"blank-{user}", None)]
        else:
            ids = [(str(uuid.UUID(int=rng.getrandbits(128), version=4)), user)]
        for notebook_id, owner in ids:
            cells_count = 300 if made % 500 == 499 else rng.randint(1, 20)
            document: dict[str, object] = {
                "id": notebook_id,
                "name": f"Notebook {made} ✨",
                "db_conn_string": f"postgresql://app:pw{made}@db.internal:5432/warehouse"
                if rng.random() < 0.3
                else None,
                "revision": rng.randint(0, 50),
                "cells": [_cell(rng, i, png) for i in range(cells_count)],
            }
            if owner is not None:
                document["user_id"] = owner
            data = json.dumps(document, ensure_ascii=False).encode()
            (directory / f"{notebook_id}.json").write_bytes(data)
            written += len(data)
            made += 1
    return written


def _cell(rng: random.Random, index: int, png: str) -> dict[str, object]:
    kind = rng.choices(["python", "sql", "markdown"], weights=[7, 2, 1])[0]
    if kind == "python":
        code = f"v{index} = v{index - 1} + {index}\nprint(v{index})" if index else "v0 = 1"
        reads, writes = ([f"v{index - 1}"] if index else []), [f"v{index}"]
    elif kind == "sql":
        code = f"SELECT * FROM events WHERE n > {{v{max(index - 1, 0)}}} LIMIT 10"
        reads, writes = [f"v{max(index - 1, 0)}"], []
    else:
        code = f"## Step {index}\nSome *notes* — ünïcödé 🚀"
        reads, writes = [], []
    cell: dict[str, object] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": kind,
        "code": code,
        "reads": reads,
        "writes": writes,
        "outputs": [],
    }
    if kind != "markdown" and rng.random() < 0.35:
        pick = rng.random()
        if pick < 0.6:
            outputs = [{"mime_type": "text/plain", "data": str(index * 7), "metadata": {}}]
        elif pick < 0.85:
            outputs = [
                {
                    "mime_type": "application/vnd.plotly.v1+json",
                    "data": {
                        "data": [{"x": list(range(20)), "y": [i * i for i in range(20)]}],
                        "layout": {"title": {"text": f"cell {index}"}},
                    },
                    "metadata": {},
                }
            ]
        else:
            outputs = [{"mime_type": "image/png", "data": png, "metadata": {"width": 640}}]
        cell.update(status="success", stdout=f"{index}\n", outputs=outputs, error=None)
    return cell


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed, result.stdout.strip().splitlines()[-1]


def arguments(description: str, notebooks: int) -> argparse.Namespace:
    """The options every import benchmark takes (``--notebooks`` defaults to ``notebooks``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--notebooks", type=int, default=notebooks)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    return parser.parse_args()


@contextlib.contextmanager
def scratch(args: argparse.Namespace, name: str) -> Iterator[tuple[dict[str, str], Path]]:
    """(environment, directory): a migrated scratch database and a temporary directory.

    Both are removed at the end unless ``--keep``.
    """
    database = f"cellar_bench_{name}_{secrets.token_hex(4)}"
    directory = Path(tempfile.mkdtemp(prefix=f"cellar-{name}-bench-"))
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
        yield env, directory
    finally:
        if args.keep:
            print(f"kept database {database} and {directory}")
        else:
            asyncio.run(_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            shutil.rmtree(directory, ignore_errors=True)


def measure(commands: list[tuple[str, list[str]]], env: dict[str, str], notebooks: int) -> None:
    """Run each command; print its summary line, its own rate and the wall-clock rate."""
    for label, command in commands:
        elapsed, summary = run(command, env)
        rate = re.search(r"\((\d+) notebooks/s\)", summary)
        print(f"{label}: {summary}")
        print(
            f"{label}: wall clock {elapsed:.2f} s for the whole process = "
            f"{notebooks / elapsed:.0f} notebooks/s (command's own rate: "
            f"{rate.group(1) if rate else '?'} notebooks/s)"
        )


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], 5000)
    with scratch(args, "legacy") as (env, directory):
        size = generate(directory, args.notebooks, args.seed)
        print(f"corpus: {args.notebooks} files, {size / 1e6:.1f} MB in {directory}")
        cellar = str(VENV_BIN / "cellar")
        measure(
            [
                ("import", [cellar, "import-legacy", str(directory)]),
                ("re-import (unchanged)", [cellar, "import-legacy", str(directory)]),
                ("export", [cellar, "export-legacy", str(directory / "export")]),
            ],
            env,
            args.notebooks,
        )


if __name__ == "__main__":
    main()
