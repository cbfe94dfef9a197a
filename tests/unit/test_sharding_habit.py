"""The habit that keeps sharding by user open: every statement on a notebook table names user_id.

On Citus (docs/scaling.md, "Sharding by user") every notebook table is
distributed by ``user_id``, and a statement runs on one shard only when it
filters on it.  This test reads every SQL statement of the store (module
constants of ``app/store/*.py``, and the statements kept in their dicts and
tuples, such as search's) that touches a notebook table, and fails when one
neither filters on ``user_id`` (``user_id =`` / ``= ANY``) nor, as an insert,
writes it.  The exceptions are listed below, each with why; a statement
listed here that no longer exists fails too, so the list stays true.  A new
statement therefore either filters by user or says why it cannot.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import TYPE_CHECKING

import pytest

import app.store

if TYPE_CHECKING:
    from collections.abc import Iterator

NOTEBOOK_TABLES = re.compile(
    r"\b(notebooks|cell_runs|cell_search|notebook_events|checkpoints|notebook_checkpoints)\b"
)
STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
FILTERS_ON_USER = re.compile(r"\buser_id\s*=", re.IGNORECASE)
INSERTS_USER = re.compile(r"INSERT\s+INTO\s+\w+\s*\([^)]*\buser_id\b", re.IGNORECASE)

# Statements that do not route to one shard, and why (docs/scaling.md says the same).
MULTI_SHARD = {
    # Every user's notebooks, by nature: command-line exports and their counts.
    "ipynb._EXPORT_ALL": "cellar export-ipynb of every user",
    "ipynb.EXPORT_ALL": "cellar export-ipynb of every user",
    "ipynb.COUNT_ALL": "cellar export-ipynb of every user (progress)",
    "legacy._LEGACY": "the legacy export's base statement (completed by the ones below)",
    "legacy.EXPORT_ALL": "cellar export-legacy of every user",
    "legacy.COUNT_ALL": "cellar export-legacy of every user (progress)",
    "legacy.BY_ID": "the legacy import finds existing notebooks by file id, whoever owns them",
    # One user, named by the identity provider's id: on Citus, resolve users.id first.
    "legacy.EXPORT_OF_OWNER": "one owner by external id (join users): resolve the id first",
    "legacy.COUNT_OF_OWNER": "one owner by external id (join users): resolve the id first",
    "legacy.SPECIAL_NOTEBOOKS": "owners by external id (join users): resolve the ids first",
    # cell_runs has no user_id yet: on Citus it gains one (co-located with notebooks).
    "legacy.DELETE_RUNS": "cell_runs by notebook ids; gains user_id on Citus",
    "legacy.INSERT_RUNS": "cell_runs rows; gain user_id on Citus",
    "notebooks.DELETE_RUN": "cell_runs, after the owner-checked change in the same transaction",
    # The admin sees every notebook, by id.
    "notebooks.IDENTITY": "the admin's guard reads a notebook by id alone",
    # The trash's purge (SPEC §13): every user's notebooks trashed long enough ago.
    "notebooks.PURGE_TRASHED": "the daily purge of every user's old trash (a batch by age)",
    # Events by notebook id once the caller has checked the owner.
    "events.OLDEST": "by notebook id after the owner check; add user_id on Citus",
    "events.AFTER": "realtime catch-up by primary key, owner checked by the caller",
    # Realtime's sweep: one statement per heartbeat over every notebook this process
    # follows, whoever owns them.
    "realtime.LIVE": "the followed notebooks of every user, by id (one sweep per heartbeat)",
    "events.PRUNE": "cellar prune-history over every user's notebooks, by nature",
}


def statements() -> Iterator[tuple[str, str]]:
    """(module.NAME, sql) for every statement of the store touching a notebook table."""
    for info in pkgutil.iter_modules(app.store.__path__):
        module = importlib.import_module(f"app.store.{info.name}")
        for name, value in vars(module).items():
            values: list[tuple[str, object]] = [(name, value)]
            if isinstance(value, dict):
                values = [(f"{name}[{key}]", item) for key, item in value.items()]
            elif isinstance(value, (tuple, list)):
                values = [(f"{name}[{i}]", item) for i, item in enumerate(value)]
            for label, item in values:
                if isinstance(item, str) and STATEMENT.match(item) and NOTEBOOK_TABLES.search(item):
                    yield f"{info.name}.{label}", item


def names_user(sql: str) -> bool:
    return FILTERS_ON_USER.search(sql) is not None or INSERTS_USER.search(sql) is not None


ALL = dict(statements())


def test_the_store_has_statements_to_check() -> None:
    assert len(ALL) >= 30
    assert any(name.startswith("search.STATEMENTS[") for name in ALL)  # built per search shape


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_statement_on_a_notebook_table_filters_by_user(name: str) -> None:
    if name in MULTI_SHARD:
        assert not names_user(ALL[name]), f"{name} filters by user now: take it off MULTI_SHARD"
        return
    assert names_user(ALL[name]), (
        f"{name} touches a notebook table without filtering on user_id: add the owner's "
        "predicate (the path to sharding by user, docs/scaling.md), or list it in "
        "MULTI_SHARD with the reason"
    )


def test_every_exception_still_exists() -> None:
    assert set(MULTI_SHARD) <= set(ALL), set(MULTI_SHARD) - set(ALL)


def test_the_check_catches_a_statement_without_the_owner() -> None:
    assert not names_user("SELECT n.cells FROM notebooks n WHERE n.id = $1")
    assert not names_user("UPDATE cell_runs SET status = 'idle' WHERE notebook_id = $1")
    assert names_user("SELECT n.cells FROM notebooks n WHERE n.id = $1 AND n.user_id = $2")
    assert names_user("INSERT INTO notebooks (id, user_id, cells) VALUES ($1, $2, $3)")
