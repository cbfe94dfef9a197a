"""``cellar import-legacy`` and ``cellar export-legacy`` as an operator runs them (SPEC §8).

Real console-script processes on temporary directories, against the session
database.  A generated corpus holds every edge case: unicode and emoji code,
an empty cell list, a 300-cell notebook, a 3 MB image output, plotly-like
JSON outputs written with odd spacing and escapes (kept byte for byte),
files without ``user_id`` (owner from ``demo-``/``blank-`` ids, else skipped),
cell ids shared by two notebooks, and corrupt files.  Each test has its own
tag in every id and external id, so tests never see each other's rows.
Nothing here measures speed (see ``bench/legacy_import.py``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import jwt
import msgspec
import pytest

from app.notebooks.analysis import analyze
from app.notebooks.connections import ConnectionStringCipher
from tests.conftest import EXTERNAL_AUDIENCE, EXTERNAL_ISSUER, EXTERNAL_KEY, with_database
from tests.e2e.conftest import run_cli
from tests.helpers import auth_headers

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e

TIMEOUT = 120.0
PNG_BYTES = 2_300_000  # base64: a little over 3 MB of output


# -- the corpus ---------------------------------------------------------------------------


@dataclass
class Corpus:
    directory: Path
    tag: str
    owners: dict[str, str] = field(default_factory=dict)  # stem -> owner's external id
    kinds: dict[str, str] = field(default_factory=dict)  # stem -> expected kind
    bad: dict[str, str] = field(default_factory=dict)  # file name -> part of the reason
    skipped: list[str] = field(default_factory=list)  # file names without an owner

    @property
    def good(self) -> list[str]:
        return sorted(self.owners)

    def path(self, stem: str) -> Path:
        return self.directory / f"{stem}.json"

    def document(self, stem: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.path(stem).read_bytes())
        return loaded

    def write(self, stem: str, document: dict[str, Any]) -> None:
        self.path(stem).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    def user(self, letter: str) -> str:
        return f"user_{self.tag}{letter}"


def code_cell(cell_id: str, code: str, cell_type: str = "python", **run: Any) -> dict[str, Any]:
    reads, writes = analyze(cell_type, code)
    return {
        "id": cell_id,
        "type": cell_type,
        "code": code,
        "outputs": [],
        "reads": reads,
        "writes": writes,
        **run,
    }


def make_corpus(directory: Path, *, large: bool = True, corrupt: bool = True) -> Corpus:
    """Write the edge-case corpus into ``directory``; ``large`` adds the 300-cell and 3 MB files."""
    tag = uuid.uuid4().hex[:10]
    directory.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(directory, tag)
    a, b = corpus.user("A"), corpus.user("B")

    demo = f"demo-{a}"
    corpus.write(
        demo,
        {
            "id": demo,
            "name": "Démo ✨ notebook",
            "db_conn_string": "postgresql://alice:s3cr%40t@db.example.com:5432/prod?sslmode=require",
            "revision": 12,
            "cells": [
                code_cell(
                    "c-1",
                    "x = 10  # 🎉 ünïcödé\nmessage = '日本語 ✓'",
                    status="success",
                    stdout="10 🎉\n",
                    outputs=[{"mime_type": "text/plain", "data": "10", "metadata": {}}],
                    error=None,
                ),
                code_cell("c-2", "y = x + 5"),
                code_cell("c-3", "SELECT * FROM t WHERE v > {y}", "sql"),
                code_cell("c-4", "# Title\n*emphasis* — ✨", "markdown"),
                code_cell("c-5", "raw text", "raw"),
                code_cell(
                    "c-6",
                    "1 / 0",
                    status="error",
                    stdout="before\n",
                    error="ZeroDivisionError: division by zero",
                ),
                # The legacy app's reads/writes were wrong here: recomputed, reported.
                {**code_cell("c-7", "z = y * 2"), "reads": ["nope"], "writes": []},
                # No run state at all, no reads/writes: the minimal legacy cell.
                {"id": "c-8", "type": "python", "code": "print(z)", "outputs": []},
            ],
        },
    )
    corpus.owners[demo], corpus.kinds[demo] = a, "demo"

    blank = f"blank-{a}"
    corpus.write(
        blank,
        {"id": blank, "name": "Untitled", "db_conn_string": None, "revision": 0, "cells": []},
    )
    corpus.owners[blank], corpus.kinds[blank] = a, "blank"

    plotly = f"{tag}-plotly"
    # Written by hand: spacing, escapes and number spellings a re-encoder would change.
    outputs = (
        '[ {"mime_type": "application/vnd.plotly.v1+json",\n'
        '    "data": {"data": [{"type": "scatter", "x": [1, 2, 3], "y": [0.1, 1.50, 1e-07],'
        ' "name": "caf\\u00e9 \\"quoted\\""}],\n'
        '             "layout": {"title": {"text": "Ventes 📈"}, "height": 400}},\n'
        '    "metadata": {"isolated": true}},\n'
        '  {"mime_type": "text/html", "data": "<b>bold</b>", "metadata": {}} ]'
    )
    text = (
        f'{{"id": "{plotly}", "user_id": "{b}", "name": "Plotly", "db_conn_string": "",'
        ' "revision": 3,\n "cells": [{"id": "p-1", "type": "python", "code": "fig",'
        ' "status": "success", "stdout": "", "outputs": '
        + outputs
        + ', "error": null, "reads": ["fig"], "writes": []}]}'
    )
    corpus.path(plotly).write_text(text, encoding="utf-8")
    corpus.owners[plotly], corpus.kinds[plotly] = b, "user"

    for index in (1, 2):  # the same cell ids in two notebooks
        stem = f"{tag}-dup{index}"
        corpus.write(
            stem,
            {
                "id": stem,
                "user_id": b,
                "name": f"Shared ids {index}",
                "db_conn_string": None,
                "revision": index,
                "cells": [
                    code_cell("shared-1", f"a = {index}", status="success", stdout=f"{index}\n"),
                    code_cell("shared-2", "b = a + 1"),
                ],
            },
        )
        corpus.owners[stem], corpus.kinds[stem] = b, "user"

    if large:
        big = f"{tag}-big"
        cells = []
        for index in range(300):
            run = {}
            if index % 10 == 0:
                run = {
                    "status": "success",
                    "stdout": f"{index}\n",
                    "outputs": [{"mime_type": "text/plain", "data": str(index), "metadata": {}}],
                }
            cells.append(code_cell(f"big-{index:03d}", f"v{index} = {index} + 1", **run))
        corpus.write(
            big,
            {
                "id": big,
                "user_id": a,
                "name": "Three hundred cells",
                "db_conn_string": None,
                "revision": 42,
                "cells": cells,
            },
        )
        corpus.owners[big], corpus.kinds[big] = a, "user"

        image = f"{tag}-image"
        png = base64.b64encode(random.Random(7).randbytes(PNG_BYTES)).decode()
        corpus.write(
            image,
            {
                "id": image,
                "user_id": b,
                "name": "A large image",
                "db_conn_string": "host=db.internal user=bob password=hunter2 dbname=x",
                "revision": 5,
                "cells": [
                    code_cell(
                        "img-1",
                        "plt.plot(values)",
                        status="success",
                        stdout="",
                        outputs=[
                            {"mime_type": "image/png", "data": png, "metadata": {"width": 640}}
                        ],
                        error=None,
                    )
                ],
            },
        )
        corpus.owners[image], corpus.kinds[image] = b, "user"

    orphan = f"{tag}-orphan"
    corpus.write(orphan, {"id": orphan, "name": "Whose?", "revision": 0, "cells": []})
    corpus.skipped.append(f"{orphan}.json")

    if corrupt:
        bad = {
            "trunc": ('{"id": "%s", "cells": [{"id": "c", "type": "pyth', "truncated"),
            "malformed": ('{"id": "%s", "cells": [,]}', "malformed"),
            "cellsobj": ('{"id": "%s", "cells": {"c": 1}}', "$.cells: expected `array`"),
            "celltype": (
                '{"id": "%s", "cells": [{"id": "c", "type": "ruby", "code": ""}]}',
                "$.cells[0].type: invalid enum value 'ruby'",
            ),
            "dupcell": (
                '{"id": "%s", "user_id": "u", "cells": [{"id": "c", "type": "python", "code": ""},'
                ' {"id": "c", "type": "python", "code": ""}]}',
                "duplicate cell id 'c'",
            ),
            "status": (
                '{"id": "%s", "cells": [{"id": "c", "type": "python", "code": "", '
                '"status": "done"}]}',
                "$.cells[0].status: invalid enum value 'done'",
            ),
        }
        for suffix, (template, reason) in bad.items():
            stem = f"{tag}-bad-{suffix}"
            text = template % stem if "%s" in template else template
            corpus.path(stem).write_text(text, encoding="utf-8")
            corpus.bad[f"{stem}.json"] = reason
    return corpus


# -- database and processes ---------------------------------------------------------------


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CELLAR_DATA_DIR", None)
    return env


def cellar(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli(["cellar", *map(str, args)], environment(), timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def failed_in_one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("cellar: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def summary_of(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]


async def _query(sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def query(sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_query(sql, *args))


_STATE = """
SELECT n.id, u.external_id, u.provisioned_at, n.kind, n.name, n.db_conn_string, n.revision,
       n.cells::text AS cells, n.updated_at,
       coalesce((SELECT json_agg(json_build_array(r.cell_id, r.status, r.stdout, r.outputs,
                                                 r.error, r.updated_at) ORDER BY r.cell_id)
                   FROM cell_runs r WHERE r.notebook_id = n.id), '[]')::text AS runs
  FROM notebooks n JOIN users u ON u.id = n.user_id
 WHERE n.id = ANY($1::text[])
"""


def state(stems: list[str]) -> dict[str, dict[str, Any]]:
    return {row["id"]: dict(row) for row in query(_STATE, stems)}


def counts() -> tuple[int, int, int]:
    row = query(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM notebooks), "
        "(SELECT count(*) FROM cell_runs)"
    )[0]
    return (row[0], row[1], row[2])


class _RawCell(msgspec.Struct):
    id: str
    outputs: msgspec.Raw = msgspec.Raw(b"[]")


class _RawNotebook(msgspec.Struct):
    cells: list[_RawCell]


def raw_outputs(path: Path) -> dict[str, bytes]:
    """Each cell's outputs exactly as the file spells them."""
    notebook = msgspec.json.decode(path.read_bytes(), type=_RawNotebook)
    return {cell.id: bytes(cell.outputs) for cell in notebook.cells}


def has_run_state(cell: dict[str, Any]) -> bool:
    return (
        cell.get("status", "idle") != "idle"
        or cell.get("stdout", "") != ""
        or cell.get("outputs", []) != []
        or cell.get("error") is not None
    )


def assert_stored_as_in_file(corpus: Corpus, stem: str, row: dict[str, Any], **expect: Any) -> None:
    """Every field of the file against the database, one by one."""
    document = corpus.document(stem)
    cipher = ConnectionStringCipher(os.environ["ENCRYPTION_KEY"])
    assert row["external_id"] == corpus.owners[stem]
    assert row["kind"] == expect.get("kind", corpus.kinds[stem])
    assert row["name"] == document["name"]
    stored_conn = row["db_conn_string"]
    if document["db_conn_string"] is None:
        assert stored_conn is None
    else:
        assert stored_conn != document["db_conn_string"], "stored encrypted"
        assert cipher.decrypt(stored_conn) == document["db_conn_string"]
    assert row["revision"] == expect.get("revision", document["revision"])
    cells = json.loads(row["cells"])
    assert [c["id"] for c in cells] == [c["id"] for c in document["cells"]]
    runs = {run[0]: run for run in json.loads(row["runs"])}
    raw = raw_outputs(corpus.path(stem))
    for mine, stored in zip(document["cells"], cells, strict=True):
        assert stored["type"] == mine["type"]
        assert stored["code"] == mine["code"]
        reads, writes = analyze(mine["type"], mine["code"])
        assert (stored["reads"], stored["writes"]) == (reads, writes), "recomputed"
        assert stored["metadata"] == {}
        run = runs.get(mine["id"])
        if not has_run_state(mine):
            assert run is None, f"{stem} {mine['id']}: no run state, no cell_runs row"
            continue
        assert run is not None, f"{stem} {mine['id']}"
        _, status, stdout, outputs, error, _ = run
        assert status == mine.get("status", "idle")
        assert stdout == mine.get("stdout", "")
        assert error == mine.get("error")
        assert outputs == mine["outputs"]  # parsed JSON equal
    # ... and byte for byte: the outputs column holds the file's very text.
    for row_run in query(
        "SELECT cell_id, outputs::text AS outputs FROM cell_runs WHERE notebook_id = $1", stem
    ):
        assert row_run["outputs"].encode() == raw[row_run["cell_id"]], (stem, row_run["cell_id"])


# -- one imported corpus, shared by the read-only tests ------------------------------------


@dataclass
class Imported:
    corpus: Corpus
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def imported(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    corpus = make_corpus(tmp_path_factory.mktemp("legacy-corpus"))
    first = cellar("import-legacy", corpus.directory)
    yield Imported(corpus, first)


def test_import_reports_every_file_and_exits_1_when_some_failed(imported: Imported) -> None:
    corpus, result = imported.corpus, imported.first
    line = failed_in_one_line(result)
    total = len(corpus.good) + len(corpus.bad) + len(corpus.skipped)
    assert line == f"cellar: error: {len(corpus.bad)} of {total} files failed"
    lines = result.stdout.splitlines()
    for name, reason in corpus.bad.items():
        [reported] = [x for x in lines if x.startswith(f"failed {name}: ")]
        assert reason in reported, reported
    for name in corpus.skipped:
        assert any(x.startswith(f"skipped {name}: no owner") for x in lines), lines
    demo = f"demo-{corpus.user('A')}"
    assert f"note {demo}.json: recomputed {demo} c-7 reads: file=['nope'] server=['y']" in lines
    assert f"note {demo}.json: recomputed {demo} c-7 writes: file=[] server=['z']" in lines
    assert summary_of(result.stdout).startswith(
        f"imported {len(corpus.good)}, updated 0, unchanged 0, skipped {len(corpus.skipped)}, "
        f"failed {len(corpus.bad)} in "
    )
    assert summary_of(result.stdout).endswith("; created 2 users")
    assert "notebooks/s" in summary_of(result.stdout)
    # Not a terminal: progress is plain lines on stderr, never carriage returns.
    assert "\r" not in result.stderr
    assert any(x.startswith("import: ") and "files" in x for x in result.stderr.splitlines())
    assert not state([name.removesuffix(".json") for name in [*corpus.bad, *corpus.skipped]])


def test_import_keeps_every_field(imported: Imported) -> None:
    corpus = imported.corpus
    rows = state(corpus.good)
    assert sorted(rows) == corpus.good
    for stem in corpus.good:
        assert_stored_as_in_file(corpus, stem, rows[stem])
    # Cell ids repeat across notebooks; each notebook has its own runs.
    dup1, dup2 = rows[f"{corpus.tag}-dup1"], rows[f"{corpus.tag}-dup2"]
    assert json.loads(dup1["runs"])[0][:3] == ["shared-1", "success", "1\n"]
    assert json.loads(dup2["runs"])[0][:3] == ["shared-1", "success", "2\n"]
    assert len(json.loads(rows[f"{corpus.tag}-big"]["cells"])) == 300
    image_outputs = json.loads(rows[f"{corpus.tag}-image"]["runs"])[0][3]
    assert len(image_outputs[0]["data"]) > 3_000_000


def test_imported_users_are_created_and_marked_provisioned_when_they_got_demo_or_blank(
    imported: Imported,
) -> None:
    corpus = imported.corpus
    users = {
        row["external_id"]: row["provisioned_at"]
        for row in query(
            "SELECT external_id, provisioned_at FROM users WHERE external_id = ANY($1::text[])",
            [corpus.user("A"), corpus.user("B")],
        )
    }
    assert set(users) == {corpus.user("A"), corpus.user("B")}
    assert users[corpus.user("A")] is not None  # brought a demo and a blank
    assert users[corpus.user("B")] is None  # first list provisions as for anyone


def test_second_run_changes_nothing_and_says_so(imported: Imported) -> None:
    corpus = imported.corpus
    before = state(corpus.good)
    again = cellar("import-legacy", corpus.directory)
    failed_in_one_line(again)  # the corrupt files still fail
    assert summary_of(again.stdout).startswith(
        f"imported 0, updated 0, unchanged {len(corpus.good)}, skipped 1, "
        f"failed {len(corpus.bad)} in "
    )
    assert state(corpus.good) == before  # revisions, updated_at, runs: untouched
    assert not any(line.startswith("note ") for line in again.stdout.splitlines())


def test_verify_after_import_matches(imported: Imported) -> None:
    corpus = imported.corpus
    result = cellar("import-legacy", "--verify", corpus.directory)
    failed_in_one_line(result)  # the corrupt files
    assert summary_of(result.stdout).startswith(
        f"verify: {len(corpus.good) + len(corpus.bad) + 1} files: {len(corpus.good)} match, "
        f"0 differ, 0 missing, 1 skipped, {len(corpus.bad)} failed"
    )


def test_export_then_import_then_export_is_a_fixed_point(
    imported: Imported, tmp_path: Path
) -> None:
    corpus = imported.corpus
    first, second = tmp_path / "first", tmp_path / "second"
    for user in (corpus.user("A"), corpus.user("B")):
        out = ok(cellar("export-legacy", first, "--user", user))
        assert summary_of(out).startswith("exported ")
    names = sorted(path.name for path in first.iterdir())
    assert names == sorted(f"{stem}.json" for stem in corpus.good)
    for stem in corpus.good:
        path = first / f"{stem}.json"
        assert path.stat().st_mode & 0o777 == 0o600, "clear connection strings: owner only"
        exported, original = json.loads(path.read_bytes()), corpus.document(stem)
        assert exported["id"] == stem
        assert exported["user_id"] == corpus.owners[stem]
        for key in ("name", "db_conn_string", "revision"):
            assert exported[key] == original[key], (stem, key)
        for mine, theirs in zip(original["cells"], exported["cells"], strict=True):
            assert theirs["id"] == mine["id"] and theirs["code"] == mine["code"]
            assert theirs["type"] == mine["type"]
            assert theirs["status"] == mine.get("status", "idle")
            assert theirs["stdout"] == mine.get("stdout", "")
            assert theirs["error"] == mine.get("error")
            assert (theirs["reads"], theirs["writes"]) == analyze(mine["type"], mine["code"])
        original_raw, exported_raw = raw_outputs(corpus.path(stem)), raw_outputs(path)
        for cell_id, outputs in original_raw.items():
            expected = b"[]" if json.loads(outputs) == [] else outputs
            assert exported_raw[cell_id] == expected, (stem, cell_id)

    before = state(corpus.good)
    again = ok(cellar("import-legacy", first))
    assert summary_of(again).startswith(f"imported 0, updated 0, unchanged {len(corpus.good)},")
    assert summary_of(again).endswith("; nothing to change")
    assert state(corpus.good) == before

    for user in (corpus.user("A"), corpus.user("B")):
        ok(cellar("export-legacy", second, "--user", user))
    for name in names:
        assert (second / name).read_bytes() == (first / name).read_bytes(), name
    assert not [path for path in second.iterdir() if path.name.startswith(".")], "no temp files"


# -- changes, dry runs, verify --------------------------------------------------------------


@pytest.fixture
def small(database_url: str, tmp_path: Path) -> Corpus:
    return make_corpus(tmp_path / "corpus", large=False, corrupt=False)


def test_a_changed_file_updates_its_notebook(small: Corpus) -> None:
    ok(cellar("import-legacy", small.directory))
    demo = f"demo-{small.user('A')}"
    before = state([demo])[demo]

    document = small.document(demo)
    document["name"] = "Renamed ✓"
    document["db_conn_string"] = "postgresql://alice:new@db.example.com/prod"
    cells = document["cells"]
    cells[1]["code"] = "y = x + 6"
    cells[0]["outputs"] = [{"mime_type": "text/plain", "data": "11", "metadata": {}}]
    del cells[5]  # c-6, which had a cell_runs row
    cells.insert(0, code_cell("c-new", "w = 1", status="success", stdout="new\n"))
    small.write(demo, document)

    result = ok(cellar("import-legacy", small.directory))
    lines = result.splitlines()
    [updated] = [line for line in lines if line.startswith("update ")]
    assert updated.startswith(f"update {demo}.json: name, db_conn_string, c-new.cell, c-6.cell")
    assert "c-2.code" in updated and "c-1.outputs" in updated
    assert summary_of(result).startswith(
        f"imported 0, updated 1, unchanged {len(small.good) - 1}, skipped 1, failed 0"
    )
    after = state([demo])[demo]
    assert after["revision"] == before["revision"] + 1  # the file's was not higher
    assert after["updated_at"] > before["updated_at"]
    assert_stored_as_in_file(small, demo, after, revision=before["revision"] + 1)
    assert "c-6" not in {run[0] for run in json.loads(after["runs"])}

    document["revision"] = 100  # higher than the database's: taken from the file
    small.write(demo, document)
    ok(cellar("import-legacy", small.directory))
    assert state([demo])[demo]["revision"] == 100

    again = ok(cellar("import-legacy", small.directory))
    assert summary_of(again).endswith("; nothing to change")
    assert state([demo])[demo]["revision"] == 100

    # SPEC §11: the insert and each update are an import event, the password never in clear
    log = query(
        "SELECT seq, revision, actor, op, data::text AS data FROM notebook_events"
        " WHERE notebook_id = $1 ORDER BY seq",
        demo,
    )
    assert [(e["seq"], e["actor"], e["op"]) for e in log] == [
        (1, "import", "import"),
        (2, "import", "import"),
        (3, "import", "import"),
    ]
    assert [e["revision"] for e in log] == [before["revision"], before["revision"] + 1, 100]
    assert query("SELECT seq FROM notebooks WHERE id = $1", demo)[0]["seq"] == 3
    second = json.loads(log[1]["data"])
    assert second["name"] == "Renamed ✓"
    assert second["db_conn_string"] == "***"
    assert [cell["id"] for cell in second["cells"]][:1] == ["c-new"]
    assert "alice:new" not in log[1]["data"]


def test_dry_run_writes_nothing(small: Corpus) -> None:
    before = counts()
    result = ok(cellar("import-legacy", "--dry-run", small.directory))
    assert summary_of(result).startswith(
        f"dry run, nothing written: would import {len(small.good)}, would update 0, "
        "unchanged 0, skipped 1, failed 0 in "
    )
    assert summary_of(result).endswith("; would create 2 users")
    assert counts() == before
    assert not state(small.good)

    ok(cellar("import-legacy", small.directory))
    demo = f"demo-{small.user('A')}"
    snapshot, totals = state(small.good), counts()
    document = small.document(demo)
    document["cells"][0]["code"] = "x = 11"
    small.write(demo, document)
    dry = ok(cellar("import-legacy", "--dry-run", small.directory))
    assert f"would update {demo}.json: c-1.code" in dry.splitlines()
    assert "would update 1" in summary_of(dry)
    assert state(small.good) == snapshot
    assert counts() == totals


def test_verify_lists_each_difference(small: Corpus) -> None:
    ok(cellar("import-legacy", small.directory))
    clean = ok(cellar("import-legacy", "--verify", small.directory))
    assert f"{len(small.good)} match, 0 differ, 0 missing" in summary_of(clean)

    demo, blank = f"demo-{small.user('A')}", f"blank-{small.user('A')}"
    query(
        "UPDATE notebooks SET name = 'Tampered', cells = jsonb_set(cells, '{1,code}', "
        "'\"y = 0\"') WHERE id = $1",
        demo,
    )
    query(
        "UPDATE cell_runs SET stdout = 'changed' WHERE notebook_id = $1 AND cell_id = 'c-1'", demo
    )
    query("DELETE FROM cell_runs WHERE notebook_id = $1 AND cell_id = 'c-6'", demo)
    query("DELETE FROM notebooks WHERE id = $1", blank)
    snapshot = state(small.good)

    result = cellar("import-legacy", "--verify", small.directory)
    failed_in_one_line(result)
    lines = result.stdout.splitlines()
    assert f"{demo} - name: file='Démo ✨ notebook' db='Tampered'" in lines
    assert f"{demo} c-2 code: file='y = x + 5' db='y = 0'" in lines
    assert f"{demo} c-1 stdout: file='10 🎉\\n' db='changed'" in lines
    assert f"{demo} c-6 status: file='error' db='idle'" in lines
    assert f"{demo} c-6 error: file='ZeroDivisionError: division by zero' db=None" in lines
    assert f"{blank} - notebook: file=present db=missing" in lines
    assert "1 differ, 1 missing" in summary_of(result.stdout)
    assert state(small.good) == snapshot  # verify never writes


async def test_outputs_the_api_rewrote_are_the_same_outputs(client: Any, small: Corpus) -> None:
    """``PUT …/outputs`` stores outputs compactly; verify, dry run and import see no change."""
    ok(await asyncio.to_thread(cellar, "import-legacy", small.directory))
    user = small.user("A")
    demo = f"demo-{user}"
    first = small.document(demo)["cells"][0]
    assert first["outputs"]
    response = await client.put(
        f"/notebooks/{demo}/cells/{first['id']}/outputs",
        json={key: first[key] for key in ("status", "stdout", "outputs", "error")},
        headers=auth_headers(external_token(user)),
    )
    assert response.status_code == 200, response.text
    [stored] = await asyncio.to_thread(
        query,
        "SELECT outputs::text AS outputs FROM cell_runs WHERE notebook_id = $1 AND cell_id = $2",
        demo,
        first["id"],
    )
    assert stored["outputs"].encode() != raw_outputs(small.path(demo))[first["id"]]
    before = (await asyncio.to_thread(state, [demo]))[demo]

    verify = ok(await asyncio.to_thread(cellar, "import-legacy", "--verify", small.directory))
    assert f"{len(small.good)} match, 0 differ, 0 missing" in summary_of(verify)
    dry = ok(await asyncio.to_thread(cellar, "import-legacy", "--dry-run", small.directory))
    assert "would update 0" in summary_of(dry), dry
    again = ok(await asyncio.to_thread(cellar, "import-legacy", small.directory))
    assert summary_of(again).endswith("; nothing to change"), again
    assert (await asyncio.to_thread(state, [demo]))[demo] == before


# -- owners -----------------------------------------------------------------------------------


def test_default_owner_and_owner_conflicts(small: Corpus) -> None:
    orphan = small.skipped[0].removesuffix(".json")
    without = ok(cellar("import-legacy", small.directory))  # skipped is not a failure
    assert f"skipped {orphan}.json: no owner" in without
    assert not state([orphan])

    default = small.user("D")
    result = ok(cellar("import-legacy", "--default-owner", default, small.directory))
    assert summary_of(result).startswith("imported 1, updated 0,")
    assert state([orphan])[orphan]["external_id"] == default

    stem = f"{small.tag}-dup1"
    document = small.document(stem)
    document["user_id"] = small.user("E")
    small.write(stem, document)
    moved = cellar("import-legacy", "--default-owner", default, small.directory)
    assert failed_in_one_line(moved).endswith(f"1 of {len(small.good) + 1} files failed")
    assert (
        f"failed {stem}.json: notebook '{stem}' belongs to another user ({small.user('B')}); "
        "not moved"
    ) in moved.stdout.splitlines()
    assert state([stem])[stem]["external_id"] == small.user("B")


def test_only_the_id_naming_its_owner_makes_a_demo(small: Corpus) -> None:
    owner = small.user("A")
    second = f"demo-{small.tag}-second"
    small.write(
        second,
        {"id": second, "user_id": owner, "name": "Another demo", "revision": 0, "cells": []},
    )
    result = ok(cellar("import-legacy", small.directory))
    demo = f"demo-{owner}"
    assert (
        f"note {second}.json: imported as kind user: the id is not demo-<owner> for its "
        f"owner '{owner}'"
    ) in result.splitlines()
    rows = state([demo, second])
    assert (rows[demo]["kind"], rows[second]["kind"]) == ("demo", "user")
    assert rows[second]["external_id"] == owner


def test_a_file_the_database_refuses_fails_alone(small: Corpus) -> None:
    """The batch's transaction fails; its files are replayed one transaction each."""
    refused = f"{small.tag}-dup2"
    document = small.document(refused)
    document["name"] = f"REFUSE-{small.tag}"
    small.write(refused, document)
    constraint = f"legacy_test_{small.tag}"
    query(
        f"ALTER TABLE notebooks ADD CONSTRAINT {constraint} "
        f"CHECK (name IS DISTINCT FROM 'REFUSE-{small.tag}') NOT VALID"
    )
    try:
        result = cellar("import-legacy", small.directory)
    finally:
        query(f"ALTER TABLE notebooks DROP CONSTRAINT {constraint}")
    assert failed_in_one_line(result).endswith(f"1 of {len(small.good) + 1} files failed")
    assert (
        f"failed {refused}.json: database refused it: CheckViolationError: new row for "
        f'relation "notebooks" violates check constraint "{constraint}"'
    ) in result.stdout
    assert summary_of(result.stdout).startswith(
        f"imported {len(small.good) - 1}, updated 0, unchanged 0, skipped 1, failed 1"
    )
    rows = state(small.good)
    assert sorted(rows) == sorted(stem for stem in small.good if stem != refused)
    for stem, row in rows.items():
        assert_stored_as_in_file(small, stem, row)
    assert not query("SELECT 1 FROM cell_runs WHERE notebook_id = $1", refused)
    # The constraint gone, the next run imports it and leaves the others alone.
    retry = ok(cellar("import-legacy", small.directory))
    assert summary_of(retry).startswith(
        f"imported 1, updated 0, unchanged {len(small.good) - 1}, skipped 1, failed 0"
    )


# -- through the API ----------------------------------------------------------------------------


def external_token(subject: str) -> str:
    now = int(time.time())
    claims = {
        "sub": subject,
        "iss": EXTERNAL_ISSUER,
        "aud": EXTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, EXTERNAL_KEY, algorithm="RS256")


async def test_legacy_ids_are_addressable_and_no_second_pair_is_provisioned(
    client: Any, small: Corpus
) -> None:
    result = await asyncio.to_thread(cellar, "import-legacy", small.directory)
    ok(result)
    user = small.user("A")
    headers = auth_headers(external_token(user))
    demo, blank = f"demo-{user}", f"blank-{user}"

    response = await client.get(f"/notebooks/{demo}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["kind"], body["name"]) == (demo, "demo", "Démo ✨ notebook")
    assert body["revision"] == 12
    assert body["db_conn_string"] == (
        "postgresql://alice:***@db.example.com:5432/prod?sslmode=require"
    )
    document = small.document(demo)
    assert [c["id"] for c in body["cells"]] == [c["id"] for c in document["cells"]]
    first = body["cells"][0]
    assert (first["status"], first["stdout"]) == ("success", "10 🎉\n")
    assert first["outputs"] == document["cells"][0]["outputs"]
    assert body["cells"][1]["status"] == "idle" and body["cells"][1]["outputs"] == []

    for _ in range(2):
        listed = await client.get("/notebooks", headers=headers)
        assert listed.status_code == 200, listed.text
        notebooks = {n["id"]: n["kind"] for n in listed.json()["notebooks"]}
        assert notebooks == {demo: "demo", blank: "blank"}

    # A user who already has the app's demo and blank: the legacy demo comes in as `user`.
    other = f"user_{uuid.uuid4().hex[:12]}"
    other_headers = auth_headers(external_token(other))
    provisioned = await client.get("/notebooks", headers=other_headers)
    assert sorted(n["kind"] for n in provisioned.json()["notebooks"]) == ["blank", "demo"]
    legacy_demo = f"demo-{other}"
    small.write(legacy_demo, {**document, "id": legacy_demo, "name": "Legacy demo"})
    second = await asyncio.to_thread(cellar, "import-legacy", small.directory)
    assert (
        f"note {legacy_demo}.json: imported as kind user: owner '{other}' already has a demo "
        "notebook"
    ) in ok(second)
    listed = await client.get("/notebooks", headers=other_headers)
    kinds = {n["id"]: n["kind"] for n in listed.json()["notebooks"]}
    assert len(kinds) == 3 and kinds[legacy_demo] == "user"
    assert sorted(kinds.values()) == ["blank", "demo", "user"]
    fetched = await client.get(f"/notebooks/{legacy_demo}", headers=other_headers)
    assert fetched.status_code == 200
    # Isolation holds for imported ids too.
    foreign = await client.get(f"/notebooks/{demo}", headers=other_headers)
    assert foreign.status_code == 404


# -- command line -------------------------------------------------------------------------------


def test_the_benchmark_runs_small(database_url: str) -> None:
    """``bench/legacy_import.py`` end to end on 30 files (a smoke test: no timing asserted)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "legacy_import.py"
    server = with_database(database_url, "postgres")
    scratch = "SELECT datname FROM pg_database WHERE datname LIKE 'cellar_bench_legacy_%'"
    before = {row["datname"] for row in query(scratch)}
    result = subprocess.run(
        [sys.executable, str(bench), "--notebooks", "30", "--pg-url", server],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=environment(),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("corpus: 30 files")
    assert any(line.startswith("import: imported 30, updated 0") for line in lines), lines
    assert any("unchanged 30" in line and "nothing to change" in line for line in lines)
    assert any(line.startswith("export: exported 30 notebooks") for line in lines)
    assert {row["datname"] for row in query(scratch)} == before, "the scratch database is dropped"


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("import-legacy", ["DIR", "--dry-run", "--verify", "--default-owner"]),
        ("export-legacy", ["DIR", "--user", "rollback", "clear"]),
    ],
)
def test_help(command: str, words: list[str], tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "APP_SECRET_KEY", "ENCRYPTION_KEY"}
    }
    result = run_cli(["cellar", command, "--help"], env, cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    for word in words:
        assert word in result.stdout
    assert list(tmp_path.iterdir()) == [], "--help starts no database"


def test_user_errors_are_one_line(database_url: str, tmp_path: Path) -> None:
    # A missing DIR is an argument error, before anything starts (test_cli_arguments.py).
    missing = cellar("import-legacy", tmp_path / "nope")
    assert (missing.returncode, missing.stderr) == (
        2,
        f"cellar import-legacy: error: argument DIR: no such directory: '{tmp_path / 'nope'}' "
        "(see cellar import-legacy --help)\n",
    )
    (tmp_path / "file").write_text("x")
    assert "argument DIR: not a directory" in cellar("import-legacy", tmp_path / "file").stderr
    assert "not a directory" in failed_in_one_line(cellar("export-legacy", tmp_path / "file"))
    unknown = failed_in_one_line(cellar("export-legacy", tmp_path / "out", "--user", "nobody-x"))
    assert "no user with external id 'nobody-x'" in unknown
    bad_owner = failed_in_one_line(cellar("import-legacy", tmp_path, "--default-owner", " "))
    assert "--default-owner" in bad_owner
    both = cellar("import-legacy", "--dry-run", "--verify", tmp_path)
    assert both.returncode == 2 and "not allowed with" in both.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "imported 0, updated 0, unchanged 0, skipped 0, failed 0" in ok(
        cellar("import-legacy", empty)
    )
