"""The floor: a minimal Litestar + asyncpg server running Cellar's statements by hand.

It imports nothing of ``app``: it loads Cellar's store (``app/store``, a
package that imports nothing else of ``app``) by its file path and sends the
very same SQL text, with the least application code around it:

* auth, like Cellar: an HS256 bearer token verified with PyJWT (the same
  secret, issuer and claims) and the store's one primary-key lookup of the
  user per request (``users.IS_ACTIVE``);
* ``GET /notebooks/{id}``: the store's ``notebooks.GET`` (the notebook row
  with its cells, plus the run state of ``cell_runs`` as nested records in
  the same statement); the answer carries ``cells`` and ``runs`` side by side
  as PostgreSQL returned them (cells and outputs passed through as text, not
  merged per cell: that merge is work only Cellar does);
* ``PUT /notebooks/{id}/cells/{cell_id}``: the store's ``notebooks.EDIT_CODE``,
  the one conditional ``UPDATE`` that merges the new code into the cell,
  raises the revision and returns the cell with its run state (reads/writes
  are not recomputed: that analysis is Cellar's work); answers
  ``{status, revision}``;
* ``GET /notebooks``: the store's ``notebooks.LIST``, encoded with msgspec;
* ``GET /notebooks/search``: the store's search statement
  (``search.statement``) for the two query shapes the benchmark sends
  (``q``, with trigram substring where the indexes exist, and ``writes``).

Run it with uvicorn like Cellar (``--app-dir bench floor:app``); it reads
``FLOOR_DATABASE_URL`` and ``FLOOR_SECRET_KEY`` from the environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import jwt
import msgspec
from litestar import Litestar, Request, Response, get, put
from litestar.exceptions import NotAuthorizedException, NotFoundException

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import ModuleType

STORE = Path(__file__).resolve().parent.parent / "app" / "store"


def load_store(name: str = "cellar_store") -> ModuleType:
    """Cellar's store package, loaded from its files under another name (no ``app`` import)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, STORE / "__init__.py", submodule_search_locations=[str(STORE)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    return sys.modules[name]


store = load_store()
notebooks = importlib.import_module(f"{store.__name__}.notebooks")
search_sql = importlib.import_module(f"{store.__name__}.search")
users = importlib.import_module(f"{store.__name__}.users")

# GET's columns before the nested run states, and where a run state has its outputs.
NOTEBOOK_FIELDS = notebooks.NotebookRow.__struct_fields__[:-1]
OUTPUTS = notebooks.RunState.__struct_fields__.index("outputs")
JSON = "application/json"
ENCODE = msgspec.json.encode
CELL_TYPES = ("python", "sql", "markdown", "raw")

SECRET = os.environ.get("FLOOR_SECRET_KEY", "")
POOL: dict[str, Any] = {}


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
    if claims.get("token_use") != "access" or not await conn.fetchval(
        users.IS_ACTIVE, claims["sub"]
    ):
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
        row = await conn.fetchrow(notebooks.GET, notebook_id, user)
    if row is None:
        raise NotFoundException()
    *fields, runs = row
    notebook = dict(zip(NOTEBOOK_FIELDS, fields, strict=True))
    notebook["cells"] = msgspec.Raw(notebook["cells"])
    notebook["runs"] = [
        [msgspec.Raw(value) if i == OUTPUTS else value for i, value in enumerate(run)]
        for run in runs
    ]
    return json_response(ENCODE(notebook))


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
            notebooks.EDIT_CODE,
            notebook_id,
            user,
            None,
            None,
            cell_id,
            ENCODE(dict.fromkeys(CELL_TYPES, patch)).decode(),
        )
    if row is None:
        raise NotFoundException()
    return json_response(ENCODE({"status": "ok", "revision": row["revision"]}))


@get("/notebooks")
async def list_notebooks(request: Request[Any, Any, Any]) -> Response[bytes]:
    async with POOL["pool"].acquire() as conn:
        user = await user_of(request, conn)
        rows = await conn.fetch(notebooks.LIST, user)
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
    if q is None and writes is None:
        raise NotFoundException()
    statement = search_sql.statement(None, 20, q, None, writes, trigram=POOL["trigram"])
    async with POOL["pool"].acquire() as conn:
        user = await user_of(request, conn)
        rows = await conn.fetch(statement.sql, user, *statement.args[1:])
    return json_response(
        ENCODE(
            {
                "results": [
                    {
                        "notebook_id": r["notebook_id"],
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
    async with POOL["pool"].acquire() as conn:  # as Cellar: asked once
        POOL["trigram"] = bool(await conn.fetchval(search_sql.TRIGRAM_INDEXES))
    try:
        yield
    finally:
        await POOL.pop("pool").close()


app = Litestar(
    route_handlers=[health, get_notebook, update_cell, list_notebooks, search],
    lifespan=[lifespan],
)
