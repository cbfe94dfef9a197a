"""The floor: a minimal Litestar + asyncpg server doing Cellar's queries by hand.

It imports nothing from ``app``.  Same schema, same database, same SQL shape
as Cellar for each benchmarked route, and the least application code around
it:

* auth, like Cellar: an HS256 bearer token verified with PyJWT (the same
  secret, issuer and claims) and one primary-key lookup of the user per
  request (``SELECT is_active FROM users WHERE id = $1``);
* ``GET /notebooks/{id}``: Cellar's query (the notebook row with its cells,
  plus the run state of ``cell_runs`` aggregated as JSON in the same
  statement); the answer carries ``cells`` and ``runs`` side by side as
  PostgreSQL returned them (passed through as bytes, not merged per cell:
  that merge is work only Cellar does);
* ``PUT /notebooks/{id}/cells/{cell_id}``: Cellar's one conditional
  ``UPDATE`` that merges the new code into the cell, raises the revision and
  returns the cell with its run state (reads/writes are not recomputed: that
  analysis is Cellar's work); answers ``{status, revision}``;
* ``GET /notebooks``: Cellar's list query, encoded with msgspec;
* ``GET /notebooks/search``: Cellar's search SQL for the two query shapes the
  benchmark sends (``q`` with trigram substring, and ``writes``).

Run it with uvicorn like Cellar (``--app-dir bench floor:app``); it reads
``FLOOR_DATABASE_URL`` and ``FLOOR_SECRET_KEY`` from the environment.
"""

from __future__ import annotations

import os
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
import jwt
import msgspec
from litestar import Litestar, Request, Response, get, put
from litestar.exceptions import NotAuthorizedException, NotFoundException

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

JSON = "application/json"
ENCODE = msgspec.json.encode

_GET = """
SELECT n.id, n.name, n.kind, n.db_conn_string, n.revision, n.created_at, n.updated_at,
       n.cells,
       (SELECT json_agg(json_build_array(r.cell_id, r.status, r.stdout, r.outputs, r.error))
          FROM cell_runs r WHERE r.notebook_id = n.id) AS runs
  FROM notebooks n
 WHERE n.id = $1 AND n.user_id = $2
"""
_LIST = """
SELECT u.provisioned_at IS NOT NULL AS provisioned,
       n.id, n.name, n.kind, n.revision, n.cell_count, n.updated_at
  FROM users u
  LEFT JOIN notebooks n ON n.user_id = u.id
 WHERE u.id = $1
 ORDER BY n.updated_at DESC, n.id
"""
_USER = "SELECT is_active FROM users WHERE id = $1"
_EDIT_CODE = """
UPDATE notebooks n
   SET revision = n.revision + 1, updated_at = now(),
       cells = (SELECT jsonb_agg(CASE WHEN c ->> 'id' = $3
                                      THEN c || coalesce($5::jsonb -> (c ->> 'type'),
                                                         $5::jsonb -> 'raw')
                                      ELSE c END
                                 ORDER BY i)
                  FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(c, i))
 WHERE n.id = $1 AND n.user_id = $2 AND n.cells @> $4::jsonb
   AND ($6::bigint IS NULL OR n.revision = $6) AND ($7::bigint IS NULL OR n.revision = $7)
RETURNING n.revision,
          (SELECT c FROM jsonb_array_elements(n.cells) AS c WHERE c ->> 'id' = $3 LIMIT 1) AS cell,
          (SELECT ROW(r.cell_id, r.status, r.stdout, r.outputs, r.error)
             FROM cell_runs r WHERE r.notebook_id = n.id AND r.cell_id = $3) AS run
"""

# Cellar's search statement for ``q`` (full text + trigram substring), reflowed.
_SEARCH_TEXT = r"""
WITH hits AS MATERIALIZED (
    SELECT n.id, n.name, n.cells, n.updated_at,
           ts_rank_cd(n.name_tsv, (SELECT websearch_to_tsquery('simple', $3)))::float8 + h.text_rank
           + CASE WHEN n.name ILIKE $4 ESCAPE '\' THEN 0.5::float8 ELSE 0 END
           + CASE WHEN h.code_substring THEN 0.2::float8 ELSE 0 END
           AS rank
      FROM (SELECT id, sum(text_rank) AS text_rank, bool_or(code_substring) AS code_substring
              FROM (SELECT s.notebook_id AS id,
                           CASE WHEN s.code_tsv @@ (SELECT websearch_to_tsquery('simple', $3))
                                THEN ts_rank_cd(s.code_tsv,
                                                (SELECT websearch_to_tsquery('simple', $3)))
                                ELSE 0 END::float8 AS text_rank,
                           s.code ILIKE $4 ESCAPE '\' AS code_substring
                      FROM cell_search s
                     WHERE s.user_id = $1
                       AND (s.code_tsv @@ (SELECT websearch_to_tsquery('simple', $3))
                            OR s.code ILIKE $4 ESCAPE '\')
                    UNION ALL
                    SELECT m.id, 0, false
                      FROM notebooks m
                     WHERE m.user_id = $1
                       AND (m.name_tsv @@ (SELECT websearch_to_tsquery('simple', $3))
                            OR m.name ILIKE $4 ESCAPE '\')) AS matched
             GROUP BY id) AS h
      JOIN notebooks n ON n.id = h.id
     WHERE n.user_id = $1
)
SELECT n.id, n.name, round(n.rank::numeric, 6)::float8 AS rank, m.matches
  FROM (SELECT * FROM hits ORDER BY rank DESC, updated_at DESC, id LIMIT $2) AS n
 CROSS JOIN LATERAL (
       SELECT coalesce(jsonb_agg(jsonb_build_object('cell_id', c.cell ->> 'id',
                  'snippet', btrim(regexp_replace(
                      CASE WHEN to_tsvector('simple', s.code)
                                @@ (SELECT websearch_to_tsquery('simple', $3))
                           THEN ts_headline('simple', s.code,
                                (SELECT websearch_to_tsquery('simple', $3)),
                                'MaxFragments=1, MaxWords=12, MinWords=3, StartSel=<<, StopSel=>>')
                           WHEN s.pos > 0
                           THEN CASE WHEN s.pos > 30 + 1 THEN '…' ELSE '' END
                                || substr(s.code, greatest(s.pos - 30, 1),
                                          s.pos - greatest(s.pos - 30, 1))
                                || '<<' || substr(s.code, s.pos, char_length($3)) || '>>'
                                || substr(s.code, s.pos + char_length($3), 30)
                                || CASE WHEN char_length(s.code) >= s.pos + char_length($3) + 30
                                        THEN '…' ELSE '' END
                           ELSE left(s.code, 60)
                                || CASE WHEN char_length(s.code) > 60 THEN '…' ELSE '' END
                      END, '\s+', ' ', 'g')))
                  ORDER BY c.idx), '[]'::jsonb) AS matches
         FROM (SELECT t.cell, t.idx
                 FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(cell, idx)
                WHERE (to_tsvector('simple', t.cell ->> 'code')
                          @@ (SELECT websearch_to_tsquery('simple', $3))
                       OR (t.cell ->> 'code') ILIKE $4 ESCAPE '\')
                ORDER BY t.idx
                LIMIT 5) AS c
        CROSS JOIN LATERAL (SELECT c.cell ->> 'code' AS code,
                                   strpos(lower(c.cell ->> 'code'), lower($3)) AS pos) AS s) AS m
 ORDER BY n.rank DESC, n.updated_at DESC, n.id
"""

# Cellar's search statement for ``writes`` (jsonb_path_ops containment), reflowed.
_SEARCH_WRITES = r"""
WITH hits AS MATERIALIZED (
    SELECT n.id, n.name, n.cells, n.updated_at, 0::float8 AS rank
      FROM notebooks n
     WHERE n.user_id = $1
       AND n.cells @> $3::jsonb
)
SELECT n.id, n.name, round(n.rank::numeric, 6)::float8 AS rank, m.matches
  FROM (SELECT * FROM hits ORDER BY rank DESC, updated_at DESC, id LIMIT $2) AS n
 CROSS JOIN LATERAL (
       SELECT coalesce(jsonb_agg(jsonb_build_object('cell_id', c.cell ->> 'id',
                  'snippet', btrim(regexp_replace(left(s.code, 60)
                      || CASE WHEN char_length(s.code) > 60 THEN '…' ELSE '' END,
                      '\s+', ' ', 'g')))
                  ORDER BY c.idx), '[]'::jsonb) AS matches
         FROM (SELECT t.cell, t.idx
                 FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(cell, idx)
                WHERE t.cell @> ($3::jsonb -> 0)
                ORDER BY t.idx
                LIMIT 5) AS c
        CROSS JOIN LATERAL (SELECT c.cell ->> 'code' AS code) AS s) AS m
 ORDER BY n.rank DESC, n.updated_at DESC, n.id
"""
_LIKE_SPECIAL = re.compile(r"([\\%_])")

SECRET = os.environ.get("FLOOR_SECRET_KEY", "")
POOL: dict[str, asyncpg.Pool] = {}


class Update(msgspec.Struct):
    code: str


async def user_of(request: Request[Any, Any, Any], conn: asyncpg.Connection) -> Any:
    """Verify the bearer token (HS256, our issuer) and check that its user is active."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise NotAuthorizedException()
    try:
        claims = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            issuer="cellar",
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
    except jwt.PyJWTError:
        raise NotAuthorizedException() from None
    if claims.get("token_use") != "access" or not await conn.fetchval(_USER, claims["sub"]):
        raise NotAuthorizedException()
    return claims["sub"]


def json_response(body: bytes) -> Response[bytes]:
    return Response(body, media_type=JSON)


@get("/health")
async def health() -> Response[bytes]:
    return json_response(b'{"status":"healthy"}')


@get("/notebooks/{notebook_id:str}")
async def get_notebook(request: Request[Any, Any, Any], notebook_id: str) -> Response[bytes]:
    async with POOL["pool"].acquire() as conn:
        user = await user_of(request, conn)
        row = await conn.fetchrow(_GET, notebook_id, user)
    if row is None:
        raise NotFoundException()
    return json_response(
        ENCODE(
            {
                "id": row["id"],
                "name": row["name"],
                "kind": row["kind"],
                "db_conn_string": row["db_conn_string"],
                "revision": row["revision"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
                "cells": msgspec.Raw(row["cells"]),
                "runs": msgspec.Raw(row["runs"] or "[]"),
            }
        )
    )


@put("/notebooks/{notebook_id:str}/cells/{cell_id:str}")
async def update_cell(
    request: Request[Any, Any, Any], notebook_id: str, cell_id: str
) -> Response[bytes]:
    update = msgspec.json.decode(await request.body(), type=Update)
    # The same patch whatever the cell's type: the floor does not analyse code.
    patch = {"code": update.code}
    async with POOL["pool"].acquire() as conn:
        user = await user_of(request, conn)
        row = await conn.fetchrow(
            _EDIT_CODE,
            notebook_id,
            user,
            cell_id,
            ENCODE([{"id": cell_id}]).decode(),
            ENCODE({t: patch for t in ("python", "sql", "markdown", "raw")}).decode(),
            None,
            None,
        )
    if row is None:
        raise NotFoundException()
    return json_response(ENCODE({"status": "ok", "revision": row["revision"]}))


@get("/notebooks")
async def list_notebooks(request: Request[Any, Any, Any]) -> Response[bytes]:
    async with POOL["pool"].acquire() as conn:
        user = await user_of(request, conn)
        rows = await conn.fetch(_LIST, user)
    return json_response(
        ENCODE(
            {
                "notebooks": [
                    {
                        "id": r["id"],
                        "name": r["name"],
                        "kind": r["kind"],
                        "revision": r["revision"],
                        "cell_count": r["cell_count"],
                        "updated_at": r["updated_at"],
                    }
                    for r in rows
                    if r["id"] is not None
                ]
            }
        )
    )


@get("/notebooks/search")
async def search(
    request: Request[Any, Any, Any], q: str | None = None, writes: str | None = None
) -> Response[bytes]:
    async with POOL["pool"].acquire() as conn:
        user = await user_of(request, conn)
        if q is not None:
            pattern = "%" + _LIKE_SPECIAL.sub(r"\\\1", q) + "%"
            rows = await conn.fetch(_SEARCH_TEXT, user, 20, q, pattern)
        elif writes is not None:
            rows = await conn.fetch(
                _SEARCH_WRITES, user, 20, ENCODE([{"writes": [writes]}]).decode()
            )
        else:
            raise NotFoundException()
    return json_response(
        ENCODE(
            {
                "results": [
                    {
                        "notebook_id": r["id"],
                        "name": r["name"],
                        "rank": r["rank"],
                        "matches": msgspec.Raw(r["matches"]),
                    }
                    for r in rows
                ]
            }
        )
    )


@asynccontextmanager
async def lifespan(_: Litestar) -> AsyncIterator[None]:
    # Cellar's pool settings: 1 to 10 connections, statements prepared once each.
    POOL["pool"] = await asyncpg.create_pool(
        os.environ["FLOOR_DATABASE_URL"], min_size=1, max_size=10
    )
    try:
        yield
    finally:
        await POOL.pop("pool").close()


app = Litestar(
    route_handlers=[health, get_notebook, update_cell, list_notebooks, search],
    lifespan=[lifespan],
)
