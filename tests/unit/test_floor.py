"""bench/floor.py runs the store's statements without importing the app.

The floor is "the same SQL, minus the application": it loads ``app/store``
by its path, so its statements cannot drift from Cellar's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.store import notebooks, search, users

BENCH = Path(__file__).resolve().parents[2] / "bench"

_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import floor
statement = floor.search_sql.statement(None, 20, "revenue_by_region", None, None, trigram=True)
print(json.dumps({
    "app_modules": sorted(m for m in sys.modules if m == "app" or m.startswith("app.")),
    "get": floor.notebooks.GET,
    "list": floor.notebooks.LIST,
    "edit": floor.notebooks.EDIT_CODE,
    "user": floor.users.IS_ACTIVE,
    "search": statement.sql,
}))
"""


def test_the_floor_imports_nothing_of_the_app_and_runs_the_stores_sql() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(BENCH)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(result.stdout)
    assert found["app_modules"] == []
    assert found["get"] == notebooks.GET
    assert found["list"] == notebooks.LIST
    assert found["edit"] == notebooks.EDIT_CODE
    assert found["user"] == users.IS_ACTIVE
    expected = search.statement(None, 20, "revenue_by_region", None, None, trigram=True)
    assert found["search"] == expected.sql
