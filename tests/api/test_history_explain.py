"""SPEC §11: a notebook's history and a cell's versions are each one index range scan.

100,000 events over 200 notebooks of one user (500 each, over 10 cells), the
table vacuumed and analysed as autovacuum would leave it.  The statements
explained are the store's own, with parameters bound as the service binds
them, in the custom plan of a first execution and in the generic plan
PostgreSQL may switch to once asyncpg reuses the statement.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from app.database import connection, transaction
from app.store import events
from tests.api.test_search_explain import plan_nodes
from tests.helpers import new_user_headers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

NOTEBOOKS = 200
EVENTS_EACH = 500
CELLS_EACH = 10

SEED = """
WITH notebooks_seeded AS (
    INSERT INTO notebooks (id, user_id, name, kind, cells, seq)
    SELECT $2 || n, $1, 'seeded ' || n, 'user',
           (SELECT jsonb_agg(jsonb_build_object('id', 'c' || c, 'type', 'python', 'code', ''))
              FROM generate_series(1, $5::int) AS c),
           $4::int
      FROM generate_series(1, $3::int) AS n
    RETURNING id
)
INSERT INTO notebook_events (notebook_id, seq, user_id, revision, actor, op, cell_id, data)
SELECT s.id, e, $1, e, $1::text,
       CASE WHEN e % 3 = 0 THEN 'outputs' ELSE 'cell_update' END,
       'c' || (1 + e % $5::int),
       jsonb_build_object('code', 'x = ' || e)
  FROM notebooks_seeded s, generate_series(1, $4::int) AS e
"""


async def explain(sql: str, args: tuple[Any, ...], generic: bool) -> list[dict[str, Any]]:
    async with transaction() as conn:
        if generic:
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute("PREPARE history_plan AS " + sql)
            explain_execute = await conn.fetchval(
                "SELECT 'EXPLAIN (FORMAT JSON) EXECUTE history_plan('"
                " || string_agg(quote_literal(value), ', ' ORDER BY position) || ')'"
                " FROM unnest($1::text[]) WITH ORDINALITY AS a(value, position)",
                [str(value) for value in args],
            )
            raw = await conn.fetchval(explain_execute)
            await conn.execute("DEALLOCATE history_plan")
            assert "$1" in raw  # generic indeed
        else:
            raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    return list(plan_nodes(json.loads(raw)[0]["Plan"]))


def event_scans(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [node for node in nodes if node.get("Relation Name") == "notebook_events"]


@pytest.fixture(scope="module")
async def seeded(client: Any) -> AsyncIterator[tuple[UUID, str]]:
    """The owner and the id of one of 200 notebooks with 500 events each."""
    headers = await new_user_headers(client)
    user_id = UUID((await client.get("/me", headers=headers)).json()["id"])
    prefix = f"hist-{secrets.token_hex(4)}-"
    async with connection() as conn:
        await conn.execute(SEED, user_id, prefix, NOTEBOOKS, EVENTS_EACH, CELLS_EACH)
        await conn.execute("VACUUM (ANALYZE) notebook_events")
        await conn.execute("VACUUM (ANALYZE) notebooks")
    try:
        yield user_id, f"{prefix}{NOTEBOOKS // 2}"
    finally:
        async with connection() as conn:
            await conn.execute("DELETE FROM notebooks WHERE id LIKE $1 || '%'", prefix)


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("since", [0, EVENTS_EACH - 20])
async def test_history_is_one_range_scan_of_the_primary_key(
    seeded: tuple[UUID, str], generic: bool, since: int
) -> None:
    user_id, notebook_id = seeded
    nodes = await explain(events.HISTORY, (notebook_id, user_id, since, 100), generic)
    scans = event_scans(nodes)
    assert scans, nodes
    for scan in scans:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan
        assert scan["Index Name"] == "notebook_events_pkey", scan
        assert "notebook_id" in scan["Index Cond"], scan
    page_scan = [s for s in scans if "seq >" in s["Index Cond"]]
    assert len(page_scan) == 1, scans  # the page: bounded by since in the index condition
    assert not [n for n in nodes if n["Node Type"] in ("Sort", "Seq Scan", "Bitmap Heap Scan")]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_the_catch_up_is_one_range_scan_of_the_primary_key(
    seeded: tuple[UUID, str], generic: bool
) -> None:
    _, notebook_id = seeded
    nodes = await explain(events.AFTER, (notebook_id, EVENTS_EACH - 5, 1000), generic)
    [scan] = event_scans(nodes)
    assert scan["Node Type"] == "Index Scan"
    assert scan["Index Name"] == "notebook_events_pkey"
    assert "seq >" in scan["Index Cond"]
    assert not [n for n in nodes if n["Node Type"] in ("Sort", "Seq Scan")]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_a_cells_versions_are_one_range_scan_of_the_cell_index(
    seeded: tuple[UUID, str], generic: bool
) -> None:
    user_id, notebook_id = seeded
    nodes = await explain(events.CELL_VERSIONS, (notebook_id, user_id, "c3"), generic)
    assert_one_range_of_the_cell_index(nodes)


def assert_one_range_of_the_cell_index(nodes: list[dict[str, Any]]) -> None:
    """The cell's events come from one range of ``notebook_events_cell`` and nothing else.

    Read in index order (backward: newest first) or as a bitmap of that range
    then sorted: the planner weighs the two by the heap pages to visit; both
    read the cell's code events only (the index holds nothing else).
    """
    indexed = [n for n in nodes if n.get("Index Name") == "notebook_events_cell"]
    assert len(indexed) == 1, nodes
    [scan] = indexed
    assert scan["Node Type"] in ("Index Scan", "Bitmap Index Scan"), scan
    assert "notebook_id" in scan["Index Cond"] and "cell_id" in scan["Index Cond"], scan
    others = [
        n
        for n in event_scans(nodes)
        if n["Node Type"] != "Bitmap Heap Scan" and n.get("Index Name") != "notebook_events_cell"
    ]
    assert not others, others
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"]


async def test_the_statements_answer_on_the_seed(seeded: tuple[UUID, str]) -> None:
    user_id, notebook_id = seeded
    async with connection() as conn:
        page = await events.history(conn, notebook_id, user_id, EVENTS_EACH - 3, 100)
        found = await events.cell_versions(conn, notebook_id, user_id, "c3")
    assert page is not None
    assert [e.seq for e in page.events] == [EVENTS_EACH - 2, EVENTS_EACH - 1, EVENTS_EACH]
    assert found is not None
    present, versions = found
    assert present
    assert all(v.code is not None and v.code.startswith("x = ") for v in versions)
    assert [v.seq for v in versions] == sorted((v.seq for v in versions), reverse=True)
