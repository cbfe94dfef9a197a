"""The benchmark's data, the same for every system and every run (fixed seed).

In the database (one scratch database, used by Cellar and the floor alike):

* the bench user: the big notebook (``bench-big``: 50 cells, 3 PNGs, HTML
  tables and text, about 220 KB as the API serves it), three notebooks for the
  code-update latency (``bench-out-0/1/5``: 0, 1 and 5 MB of outputs over five
  cells, plus the edited cell), ``SPREAD`` copies of the big one (``bench-spread-k``,
  for the operations spread over 16 notebooks), and small notebooks up to
  ``LIST_SIZE`` notebooks in all (the list figure);
* filler: ``filler`` smaller notebooks over other users (10,000 by default);
* for search: ``search`` more notebooks (90,000 by default, so 100,000 in all
  with the filler), one in nine of them the search user's; one in a hundred of
  the search user's notebooks, and one in fifty of all notebooks, hold the cell
  ``revenue_by_region = …`` that the search queries look for.

On disk, for Jupyter Server: the same big notebook and the same three output
notebooks as ``.ipynb`` (nbformat 4), and a directory of ``LIST_SIZE`` small
notebooks (Jupyter's listing).

Everything is derived from ``SEED`` and arithmetic over ``generate_series``,
so two runs seed byte-identical data.  Nothing here imports ``app``.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import asyncpg

SEED = 20261121
MB = 1024 * 1024
LIST_SIZE = 200
BIG_ID = "bench-big"
# Copies of the big notebook, for the operations spread over several notebooks of one
# user (update_spread, mixed): the usual case, people edit their own notebooks.
SPREAD = 16
SPREAD_IDS = [f"bench-spread-{k}" for k in range(SPREAD)]
BIG_CELLS = 50
EDITED_CELL = "target"
OUTPUT_CELLS = 5
PASSWORD = "bench password, long enough"
SEARCH_TERM = "revenue_by_region"

# Fixed ids, so the Lua scripts and the floor know them without asking.
BENCH_USER = "00000000-0000-4000-8000-00000000b001"
SEARCH_USER = "00000000-0000-4000-8000-00000000b002"
# Issue 20: one user with CROWD_SIZE notebooks of 10 python cells each.
CROWD_USER = "00000000-0000-4000-8000-00000000b003"
CROWD_SIZE = 50_000
CROWD_COMMON = "x5"  # in every crowd notebook (cell 5 writes it)
CROWD_RARE = "zebra_quota"  # in one crowd notebook in 10,000
FILLER_USERS = 100

_VOCABULARY = [
    "sales",
    "region",
    "revenue",
    "customer",
    "orders",
    "invoice",
    "product",
    "margin",
    "forecast",
    "budget",
    "cohort",
    "churn",
    "retention",
    "funnel",
    "session",
    "country",
    "channel",
    "campaign",
    "price",
    "discount",
    "inventory",
    "supplier",
    "shipment",
    "warehouse",
    "returns",
    "refund",
    "payment",
    "ledger",
    "account",
    "balance",
]


def png_like(rng: random.Random, size: int) -> str:
    """A base64 string of ``size`` characters that starts like a PNG (incompressible, as real)."""
    raw = b"\x89PNG\r\n\x1a\n" + rng.randbytes(size * 3 // 4 + 3)
    return base64.b64encode(raw).decode()[:size]


def html_table(rng: random.Random, rows: int) -> str:
    head = "<table border='1' class='dataframe'><thead><tr><th></th>"
    head += "".join(f"<th>{name}</th>" for name in ("region", "revenue", "orders", "margin"))
    body = "".join(
        f"<tr><th>{i}</th><td>{rng.choice(_VOCABULARY)}</td><td>{rng.uniform(0, 1e6):.2f}</td>"
        f"<td>{rng.randint(0, 10_000)}</td><td>{rng.uniform(0, 1):.4f}</td></tr>"
        for i in range(rows)
    )
    return f"{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class BigCell:
    """One cell of the big notebook, in a form both Cellar's rows and .ipynb are made from."""

    id: str
    code: str
    reads: list[str]
    writes: list[str]
    status: str
    stdout: str
    outputs: list[dict[str, Any]]  # Cellar's shape: {mime_type, data, metadata}


def big_notebook() -> list[BigCell]:
    """50 cells: 3 PNG plots, 7 HTML tables, text output on the others (≈ 220 KB as JSON)."""
    rng = random.Random(SEED)
    cells = []
    for i in range(BIG_CELLS):
        name, previous = f"step_{i}", f"step_{i - 1}"
        word = rng.choice(_VOCABULARY)
        reads = [previous] if i else []
        code = (
            f"# {word} analysis, step {i}\n"
            + (f"{name} = {previous}.groupby('{word}').agg(total=('{word}', 'sum'))\n" if i else "")
            + (f"{name} = load_frame('{word}.parquet')\n" if not i else "")
            + f"print({name}.describe())\n"
        )
        outputs: list[dict[str, Any]] = []
        stdout = ""
        if i in (10, 25, 40):
            outputs = [{"mime_type": "image/png", "data": png_like(rng, 52_000), "metadata": {}}]
        elif i % 5 == 0:
            outputs = [{"mime_type": "text/html", "data": html_table(rng, 60), "metadata": {}}]
        else:
            stdout = "".join(
                f"{word:>12} {rng.uniform(0, 1e4):12.3f} {rng.randint(0, 999):6d}\n"
                for _ in range(8)
            )
            outputs = [{"mime_type": "text/plain", "data": f"<{name}: 8 rows>", "metadata": {}}]
        cells.append(
            BigCell(
                id=f"cell-{i:02d}",
                code=code,
                reads=reads,
                writes=[name],
                status="success",
                stdout=stdout,
                outputs=outputs,
            )
        )
    return cells


def output_notebook(size_mb: float) -> list[BigCell]:
    """Five cells sharing ``size_mb`` of PNG outputs, then the edited cell (no outputs)."""
    rng = random.Random(SEED + round(size_mb * 1000))
    total = round(size_mb * MB)
    share, rest = divmod(total, OUTPUT_CELLS)
    cells = []
    for k in range(OUTPUT_CELLS):
        size = share + (1 if k < rest else 0)
        outputs = (
            [{"mime_type": "image/png", "data": png_like(rng, size), "metadata": {"k": k}}]
            if size
            else []
        )
        cells.append(
            BigCell(f"plot-{k}", f"plot{k} = render({k})", [], [f"plot{k}"], "success", "", outputs)
        )
    cells.append(BigCell(EDITED_CELL, "x = 0", [], ["x"], "idle", "", []))
    return cells


def stored_cells(cells: list[BigCell]) -> str:
    """The ``notebooks.cells`` document (Cellar's stored shape: no run state)."""
    return json.dumps(
        [
            {
                "id": c.id,
                "type": "python",
                "code": c.code,
                "reads": c.reads,
                "writes": c.writes,
                "metadata": {},
            }
            for c in cells
        ],
        separators=(",", ":"),
    )


# -- PostgreSQL ----------------------------------------------------------------------


async def seed_base(
    conn: asyncpg.Connection,
    password_hash: str,
    *,
    filler: int,
    sizes_mb: list[float],
) -> None:
    """Users, the bench user's notebooks (big, outputs, list) and the filler."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO users (id, email, password_hash, provisioned_at) "
            "VALUES ($1, 'bench@bench.invalid', $3, now()), "
            "       ($2, 'search@bench.invalid', $3, now())",
            BENCH_USER,
            SEARCH_USER,
            password_hash,
        )
        await conn.execute(
            "INSERT INTO users (id, email, provisioned_at) "
            "SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, "
            "       'filler' || g || '@bench.invalid', now() "
            "  FROM generate_series(1, $1) AS g",
            FILLER_USERS,
        )
        notebooks = [(BIG_ID, "Quarterly revenue analysis", big_notebook())]
        notebooks += [
            (f"bench-out-{s:g}", f"outputs {s:g} MB", output_notebook(s)) for s in sizes_mb
        ]
        for notebook_id, name, cells in notebooks:
            await conn.execute(
                "INSERT INTO notebooks (id, user_id, name, kind, cells) "
                "VALUES ($1, $2, $3, 'user', $4::jsonb)",
                notebook_id,
                BENCH_USER,
                name,
                stored_cells(cells),
            )
            await conn.executemany(
                "INSERT INTO cell_runs (notebook_id, cell_id, status, stdout, outputs) "
                "VALUES ($1, $2, $3, $4, $5::json)",
                [
                    (notebook_id, c.id, c.status, c.stdout, json.dumps(c.outputs))
                    for c in cells
                    if c.outputs or c.stdout
                ],
            )
        await conn.execute(
            "INSERT INTO notebooks (id, user_id, name, kind, cells) "
            "SELECT s.id, n.user_id, n.name || ' ' || s.k, n.kind, n.cells "
            "  FROM notebooks n, unnest($2::text[]) WITH ORDINALITY AS s(id, k) WHERE n.id = $1",
            BIG_ID,
            SPREAD_IDS,
        )
        await conn.execute(
            "INSERT INTO cell_runs (notebook_id, cell_id, status, stdout, outputs) "
            "SELECT s.id, r.cell_id, r.status, r.stdout, r.outputs "
            "  FROM cell_runs r, unnest($2::text[]) AS s(id) WHERE r.notebook_id = $1",
            BIG_ID,
            SPREAD_IDS,
        )
        # The rest of the bench user's LIST_SIZE notebooks, then the filler.
        await conn.execute(
            _SMALL_NOTEBOOKS.format(owner="$2::uuid", id_prefix="bench-list-"),
            LIST_SIZE - len(notebooks) - SPREAD,
            BENCH_USER,
        )
        await conn.execute(
            _SMALL_NOTEBOOKS.format(
                owner="('00000000-0000-4000-8000-' || lpad(to_hex(1 + g % $2), 12, '0'))::uuid",
                id_prefix="filler-",
            ),
            filler,
            FILLER_USERS,
        )


async def seed_search(conn: asyncpg.Connection, *, count: int) -> None:
    """``count`` more notebooks, one in nine the search user's; then VACUUM (ANALYZE)."""
    await conn.execute(
        _SMALL_NOTEBOOKS.format(
            owner=f"CASE WHEN g % 9 = 0 THEN '{SEARCH_USER}'::uuid ELSE "
            "('00000000-0000-4000-8000-' || lpad(to_hex(1 + g % $2), 12, '0'))::uuid END",
            id_prefix="search-",
        ),
        count,
        FILLER_USERS,
    )
    await vacuum(conn)


async def seed_crowd(conn: asyncpg.Connection, *, count: int = CROWD_SIZE) -> None:
    """The crowd user (issue 20) and ``count`` notebooks of theirs; then VACUUM (ANALYZE).

    Each notebook has 10 python cells of about 60 characters; cell k writes
    ``x<k>``, so ``x5`` is in every notebook, and one notebook in 10,000
    also holds ``zebra_quota``.  ``updated_at`` one minute apart.
    """
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO users (id, email, provisioned_at) "
            "VALUES ($1, 'crowd@bench.invalid', now()) ON CONFLICT DO NOTHING",
            CROWD_USER,
        )
        await conn.execute(_CROWD_NOTEBOOKS, count, CROWD_USER)
    await vacuum(conn)


_CROWD_NOTEBOOKS = """
INSERT INTO notebooks (id, user_id, name, kind, cells, created_at, updated_at)
SELECT 'crowd-' || g, $2::uuid, 'report ' || g, 'user',
       (SELECT jsonb_agg(jsonb_build_object(
                 'id', 'c' || k,
                 'type', 'python',
                 'code', 'x' || k || ' = load_' || (g * k) % 97 || '("run_' || g % 1000 || '")'
                         || CASE WHEN k = 3 AND g % 10000 = 0
                                 THEN E'\\nzebra_quota = x' || k ELSE '' END,
                 'reads', '[]'::jsonb,
                 'writes', jsonb_build_array('x' || k),
                 'metadata', '{}'::jsonb) ORDER BY k)
          FROM generate_series(1, 10) AS k),
       timestamptz '2026-02-01' + g * interval '1 minute',
       timestamptz '2026-02-01' + g * interval '1 minute'
  FROM generate_series(1, $1) AS g
"""


async def vacuum(conn: asyncpg.Connection) -> None:
    """Flush the GIN pending lists and give the planner fresh statistics."""
    for table in ("users", "notebooks", "cell_search", "cell_runs"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")


# Small notebooks: 3 to 5 python cells of about 80 characters each, words
# picked by arithmetic on g (deterministic); every 900th notebook (so one in a
# hundred of the search user's, who owns g % 9 = 0) and every 50th of the rest
# (g % 50 = 1) writes revenue_by_region.  $1 = how many.
_SMALL_NOTEBOOKS = """
INSERT INTO notebooks (id, user_id, name, kind, cells, created_at, updated_at)
SELECT '{id_prefix}' || g,
       {owner},
       initcap(v.w1) || ' ' || v.w2 || ' ' || g,
       'user',
       (SELECT jsonb_agg(jsonb_build_object(
                 'id', 'c' || k,
                 'type', 'python',
                 'code', CASE WHEN k = 1 AND (g % 900 = 0 OR g % 50 = 1)
                              THEN 'revenue_by_region = sales.groupby("region").revenue.sum()'
                              ELSE v.w1 || '_' || k || ' = ' || v.w2 || '_frame.query("'
                                   || v.w3 || ' > ' || (g * k) % 1000 || '")'
                                   || E'\\nprint(len(' || v.w1 || '_' || k || '))' END,
                 'reads', CASE WHEN k = 1 AND (g % 900 = 0 OR g % 50 = 1)
                               THEN jsonb_build_array('sales')
                               ELSE jsonb_build_array(v.w2 || '_frame') END,
                 'writes', CASE WHEN k = 1 AND (g % 900 = 0 OR g % 50 = 1)
                                THEN jsonb_build_array('revenue_by_region')
                                ELSE jsonb_build_array(v.w1 || '_' || k) END,
                 'metadata', '{{}}'::jsonb) ORDER BY k)
          FROM generate_series(1, 3 + g % 3) AS k),
       timestamptz '2026-01-01' + g * interval '1 minute',
       timestamptz '2026-01-01' + g * interval '1 minute'
  FROM generate_series(1, $1) AS g,
       LATERAL (SELECT ({words})[1 + (g * 7) % {n}] AS w1,
                       ({words})[1 + (g * 13 + 5) % {n}] AS w2,
                       ({words})[1 + (g * 31 + 11) % {n}] AS w3) AS v
""".replace("{words}", "ARRAY[" + ",".join(f"'{w}'" for w in _VOCABULARY) + "]").replace(
    "{n}", str(len(_VOCABULARY))
)


# -- Jupyter ---------------------------------------------------------------------------


def ipynb(cells: list[BigCell]) -> dict[str, Any]:
    """The same cells as an nbformat 4 notebook, outputs as Jupyter stores them."""
    nb_cells = []
    for number, c in enumerate(cells, 1):
        outputs: list[dict[str, Any]] = []
        if c.stdout:
            outputs.append({"output_type": "stream", "name": "stdout", "text": c.stdout})
        for output in c.outputs:
            outputs.append(
                {
                    "output_type": "display_data",
                    "data": {output["mime_type"]: output["data"]},
                    "metadata": output["metadata"],
                }
            )
        nb_cells.append(
            {
                "cell_type": "code",
                "id": c.id,
                "execution_count": number if c.status != "idle" else None,
                "metadata": {},
                "source": c.code,
                "outputs": outputs,
            }
        )
    return {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_jupyter_root(root: Path, sizes_mb: list[float]) -> dict[str, int]:
    """``big.ipynb``, ``out-<size>.ipynb`` and ``list/`` (LIST_SIZE small notebooks)."""
    sizes = {}
    path = root / "big.ipynb"
    path.write_text(json.dumps(ipynb(big_notebook()), indent=1))
    sizes["big.ipynb"] = path.stat().st_size
    for size in sizes_mb:
        path = root / f"out-{size:g}.ipynb"
        path.write_text(json.dumps(ipynb(output_notebook(size)), indent=1))
        sizes[path.name] = path.stat().st_size
    listing = root / "list"
    listing.mkdir()
    for i in range(LIST_SIZE):
        small = BigCell(f"c{i}", f"value_{i} = {i} * 2", [], [f"value_{i}"], "idle", "", [])
        (listing / f"notebook-{i:03d}.ipynb").write_text(json.dumps(ipynb([small]), indent=1))
    return sizes
