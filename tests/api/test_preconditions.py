"""The revision precondition, stated once: the fast path and the explain path agree.

Every change of a notebook is one conditional statement (the fast path): it
changes the row, or matches none.  ``explain`` reads the notebook's state and
says why a change would be refused (the explain path).  For every change and
every case (missing notebook, another user's, stale body revision, stale
If-Match, both, missing cell, nothing wrong) the two must give the same
answer: the statement succeeds exactly when ``explain`` finds nothing, and
when it is refused the route answers what ``explain`` says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest

from app.database import connection
from app.errors import CellarError
from app.notebooks.connections import ConnectionStringCipher
from app.notebooks.schemas import CellOutputs
from app.notebooks.services import NotebookService, explain
from app.store import notebooks as store
from app.store.notebooks import Precondition
from tests.api.test_notebooks import create_notebook, fresh_user_headers, get_notebook

Change = Callable[[NotebookService, UUID, str, str, Precondition], Awaitable[Any]]

# Each change of a notebook through the service, and whether it names a cell.
CHANGES: dict[str, tuple[Change, bool]] = {
    "rename": (lambda s, u, n, c, p: s.rename(u, n, "renamed", p), False),
    "set connection": (lambda s, u, n, c, p: s.set_connection(u, n, "postgresql://h/db", p), False),
    "delete notebook": (lambda s, u, n, c, p: s.delete(u, n, p), False),
    "insert cell": (lambda s, u, n, c, p: s.insert_cell(u, n, "python", "x = 1", None, p), False),
    "edit code": (lambda s, u, n, c, p: s.update_cell(u, n, c, "y = 2", p), True),
    "move cell": (lambda s, u, n, c, p: s.move_cell(u, n, c, 0, p), True),
    "delete cell": (lambda s, u, n, c, p: s.delete_cell(u, n, c, p), True),
}

# (notebook, cell, body revision, If-Match revision, answer) for a notebook at revision 0.
CASES: dict[str, tuple[str, str, int | None, int | None, int | None]] = {
    "nothing wrong": ("own", "own", None, None, None),
    "both revisions right": ("own", "own", 0, 0, None),
    "missing notebook": ("missing", "own", None, None, 404),
    "another user's notebook": ("other", "own", 0, 0, 404),
    "stale body revision": ("own", "own", 7, None, 409),
    "stale If-Match": ("own", "own", None, 7, 412),
    "both stale": ("own", "own", 7, 7, 409),
    "stale If-Match, right body": ("own", "own", 0, 7, 412),
    "missing cell": ("own", "missing", None, None, 404),
    "stale body and missing cell": ("own", "missing", 7, None, 409),
    "stale If-Match and missing cell": ("own", "missing", None, 7, 412),
}


def _answer(error: CellarError | None) -> tuple[int, dict[str, Any]] | None:
    return None if error is None else (error.status_code, error.body())


@pytest.fixture
def service(settings: Any) -> NotebookService:
    return NotebookService(settings, ConnectionStringCipher(settings.encryption_key))


async def _user_id(client: Any, headers: dict[str, str]) -> UUID:
    response = await client.get("/me", headers=headers)
    return UUID(response.json()["id"])


async def _notebook(client: Any) -> tuple[dict[str, str], UUID, UUID, str, str]:
    """An owner's headers and id, another user's id, a new notebook and its one cell."""
    headers = await fresh_user_headers(client)
    owner = await _user_id(client, headers)
    other = await _user_id(client, await fresh_user_headers(client))
    notebook_id = await create_notebook(client, headers)
    cell_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    return headers, owner, other, notebook_id, cell_id


@pytest.mark.parametrize(
    ("change", "case"),
    [
        (change, case)
        for change, (_, names_cell) in CHANGES.items()
        for case, (_, which_cell, *_) in CASES.items()
        if names_cell or which_cell != "missing"
    ],
)
async def test_the_statement_and_explain_give_the_same_answer(
    client: Any, service: NotebookService, change: str, case: str
) -> None:
    run, names_cell = CHANGES[change]
    which_notebook, which_cell, body, header, status = CASES[case]
    headers, owner, other, notebook_id, cell_id = await _notebook(client)
    target = {"own": notebook_id, "other": notebook_id, "missing": "no-such-notebook"}
    caller = other if which_notebook == "other" else owner
    asked_notebook = target[which_notebook]
    asked_cell = cell_id if which_cell == "own" else "no-such-cell"
    pre = Precondition(body, header)

    # The explain path: the notebook's state, then explain, with no change attempted.
    async with connection() as conn:
        state = await store.state(conn, asked_notebook, caller, asked_cell if names_cell else None)
    expected = _answer(explain(state, pre, asked_cell if names_cell else None))
    assert (expected or (None,))[0] == status, expected

    # The fast path: the conditional statement, explained only when it matched no row.
    try:
        await run(service, caller, asked_notebook, asked_cell, pre)
    except CellarError as error:
        answer = _answer(error)
    else:
        answer = None
    assert answer == expected

    after = (await get_notebook(client, headers, notebook_id))["revision"] if status else None
    assert after in (None, 0), "a refused change must change nothing"


@pytest.mark.parametrize("case", ["nothing wrong", "missing notebook", "another user's notebook"])
async def test_outputs_follow_the_same_order(
    client: Any, service: NotebookService, case: str
) -> None:
    """Outputs carry no revision; their refusals still come from ``explain``."""
    which_notebook, _, _, _, status = CASES[case]
    _, owner, other, notebook_id, cell_id = await _notebook(client)
    caller = other if which_notebook == "other" else owner
    asked = "no-such-notebook" if which_notebook == "missing" else notebook_id
    for asked_cell in (cell_id, "no-such-cell"):
        async with connection() as conn:
            state = await store.state(conn, asked, caller, asked_cell)
        expected = _answer(explain(state, Precondition(), asked_cell))
        try:
            await service.write_outputs(caller, asked, asked_cell, CellOutputs(status="success"))
        except CellarError as error:
            answer = _answer(error)
        else:
            answer = None
        assert answer == expected
        if asked_cell == cell_id:
            assert (expected or (None,))[0] == status
        else:
            assert expected is not None and expected[0] == 404
