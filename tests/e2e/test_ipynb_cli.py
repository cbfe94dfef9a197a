"""``cellar import-ipynb`` and ``cellar export-ipynb`` as an operator runs them (SPEC §12).

Real console-script processes against the session database, on a folder of
the .ipynb corpus (``tests/ipynb_corpus.py``) spread over subfolders, with a
corrupt file, a notebook that is not a notebook, a file over a limit, a
duplicate and Jupyter's hidden checkpoints among them.  Each test owns a
fresh user, so tests never see each other's notebooks.  Nothing here
measures speed (see ``bench/ipynb_import.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import nbformat
import pytest

from tests import ipynb_corpus as corpus
from tests.e2e.conftest import run_cli
from tests.ipynb_corpus import as_read, without_ids

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e

TIMEOUT = 120.0


def cellar(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("CELLAR_DATA_DIR", None)
    return run_cli(["cellar", *map(str, args)], env, timeout=TIMEOUT)


def query(sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def new_user(external_id: bool = False) -> str:
    """A fresh user; their email (or external id)."""
    tag = uuid.uuid4().hex[:12]
    email, subject = f"ipynb-{tag}@example.com", f"user_ipynb_{tag}"
    query("INSERT INTO users (email, external_id) VALUES ($1, $2)", email, subject)
    return subject if external_id else email


def names_of(email: str) -> dict[str, str]:
    """The user's notebooks: name → id."""
    rows = query(
        "SELECT n.name, n.id FROM notebooks n JOIN users u ON u.id = n.user_id "
        "WHERE u.email = $1 OR u.external_id = $1",
        email,
    )
    names = {row["name"]: row["id"] for row in rows}
    assert len(names) == len(rows), "two notebooks of one name"
    return names


def summary_of(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result.stdout.strip().splitlines()[-1]


@dataclass
class Folder:
    root: Path
    good: dict[str, Path]  # notebook name (the file's stem) → file
    bad: dict[str, str]  # file name → part of its failure line


def make_folder(root: Path) -> Folder:
    """The corpus in three folders, plus files that must fail or be left out."""
    builders = {**corpus.VALID, **corpus.V3}
    builders.update({name: build for name, (build, _) in corpus.REPAIRED.items()})
    good: dict[str, Path] = {}
    for index, (name, build) in enumerate(sorted(builders.items())):
        folder = root / ("a", "b/deeper", ".")[index % 3]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.ipynb"
        path.write_text(build(), encoding="utf-8")
        good[name] = path
    (root / "b" / "corrupt.ipynb").write_bytes(corpus.every_output_type().encode()[:300])
    (root / "a" / "not_a_notebook.ipynb").write_text('{"cells": 3, "nbformat": 4}')
    lines = "x = 1\n" * 50_000  # 300 KB of code: over MAX_CELL_CODE_BYTES
    (root / "too_long.ipynb").write_bytes(
        corpus._cells({**corpus._CODE, "source": lines, "outputs": []})
    )
    # Left out: Jupyter's checkpoints, hidden files, other extensions.
    (root / "a" / ".ipynb_checkpoints").mkdir()
    (root / "a" / ".ipynb_checkpoints" / "every_output_type-checkpoint.ipynb").write_text("{")
    (root / ".hidden.ipynb").write_text("{")
    (root / "notes.txt").write_text("not a notebook")
    bad = {
        "corrupt.ipynb": "notebook: not JSON",
        "not_a_notebook.ipynb": "nbformat_minor: missing",
        "too_long.ipynb": "cells[0].source: larger than 262144 bytes (MAX_CELL_CODE_BYTES)",
    }
    return Folder(root, good, bad)


@pytest.fixture(scope="module")
def imported(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Folder, str, subprocess.CompletedProcess[str]]]:
    folder = make_folder(tmp_path_factory.mktemp("ipynb") / "notebooks")
    owner = new_user()
    yield folder, owner, cellar("import-ipynb", folder.root, "--owner", owner.upper())


def test_a_folder_imports_every_good_file_and_exits_1_for_the_bad(
    imported: tuple[Folder, str, subprocess.CompletedProcess[str]],
) -> None:
    folder, owner, result = imported
    assert result.returncode == 1, (result.stdout, result.stderr)
    total = len(folder.good) + len(folder.bad)
    assert result.stderr.strip().splitlines()[-1] == f"cellar: error: 3 of {total} files failed"
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed ")]
    assert len(failed) == 3, result.stdout
    for name, reason in folder.bad.items():
        assert any(name in line and reason in line for line in failed), (name, failed)
    assert summary_of(result).startswith(
        f"imported {len(folder.good)}, unchanged 0 (imported before), failed 3 in "
    )
    # Repairs are noted, one line per file.
    assert any(
        line.startswith("note ") and "ids_missing.ipynb: 2 repairs: cells[0]: id missing" in line
        for line in result.stdout.splitlines()
    ), result.stdout
    # Each good file is a notebook named after it; nothing else came in.
    assert set(names_of(owner)) == set(folder.good)


def test_a_second_run_imports_nothing_new(
    imported: tuple[Folder, str, subprocess.CompletedProcess[str]],
) -> None:
    folder, owner, _ = imported
    before = names_of(owner)
    again = cellar("import-ipynb", folder.root, "--owner", owner)
    assert again.returncode == 1  # the bad files still fail
    assert summary_of(again).startswith(
        f"imported 0, unchanged {len(folder.good)} (imported before), failed 3 in "
    )
    assert names_of(owner) == before


def test_the_export_gives_the_files_back(
    imported: tuple[Folder, str, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    folder, owner, _ = imported
    out = tmp_path / "out"
    result = cellar("export-ipynb", out, "--user", owner)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert summary_of(result).startswith(f"exported {len(folder.good)} notebooks to {out}")
    written = {path.name for path in out.iterdir()}
    assert written == {f"{name}.ipynb" for name in folder.good}  # no temporary files left
    for name, source in folder.good.items():
        text = source.read_text()
        exported = (out / f"{name}.ipynb").read_bytes()
        nbformat.validate(nbformat.reads(exported.decode(), as_version=nbformat.NO_CONVERT))
        if name in corpus.VALID:
            assert as_read(exported) == as_read(text), name
        elif name in corpus.V3:
            assert without_ids(as_read(exported)) == without_ids(as_read(text, as_version=4))
    # Run again over the same folder: the same names, replaced in place.
    again = cellar("export-ipynb", out, "--user", owner)
    assert again.returncode == 0
    assert {path.name for path in out.iterdir()} == written


def test_exported_files_import_back_as_unchanged_notebooks(
    imported: tuple[Folder, str, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    folder, owner, _ = imported
    out = tmp_path / "out"
    assert cellar("export-ipynb", out, "--user", owner).returncode == 0
    other = new_user(external_id=True)  # named by external id this time
    result = cellar("import-ipynb", out, "--owner", other)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert summary_of(result).startswith(f"imported {len(folder.good)}, unchanged 0")
    assert set(names_of(other)) == set(folder.good)
    # The export of what came back is the file it came from.
    back = tmp_path / "back"
    assert cellar("export-ipynb", back, "--user", other).returncode == 0
    for path in out.iterdir():
        assert as_read((back / path.name).read_bytes()) == as_read(path.read_bytes()), path.name


def test_files_paths_and_copies(database_url: str, tmp_path: Path) -> None:
    owner = new_user()
    one = tmp_path / "one.ipynb"
    one.write_text(corpus.plots())
    shutil.copy(one, tmp_path / "copy of one.ipynb")  # the same bytes under another name
    result = cellar("import-ipynb", one, tmp_path, one, "--owner", owner)
    assert result.returncode == 0, (result.stdout, result.stderr)
    # A file named twice (or found again in a folder) is one file; a copy is a notebook too.
    assert summary_of(result).startswith("imported 2, unchanged 0 (imported before), failed 0")
    assert set(names_of(owner)) == {"one", "copy of one"}
    again = cellar("import-ipynb", tmp_path / "copy of one.ipynb", "--owner", owner)
    assert summary_of(again).startswith("imported 0, unchanged 1 (imported before), failed 0")


def test_export_of_every_user_goes_into_a_folder_each(database_url: str, tmp_path: Path) -> None:
    first, second = new_user(), new_user()
    source = tmp_path / "in"
    source.mkdir()
    (source / "same name.ipynb").write_text(corpus.julia())
    assert cellar("import-ipynb", source, "--owner", first).returncode == 0
    assert cellar("import-ipynb", source, "--owner", second).returncode == 0
    (source / "same name.ipynb").write_text(corpus.r_kernel())  # changed: a new notebook
    assert cellar("import-ipynb", source, "--owner", first).returncode == 0
    out = tmp_path / "out"
    result = cellar("export-ipynb", out)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert sorted(path.name for path in (out / first).iterdir()) == [
        "same name (2).ipynb",
        "same name.ipynb",
    ]
    assert [path.name for path in (out / second).iterdir()] == ["same name.ipynb"]
    languages = [
        json.loads((out / first / name).read_text())["metadata"]["kernelspec"]["language"]
        for name in ("same name.ipynb", "same name (2).ipynb")
    ]
    assert languages == ["julia", "R"]  # in order of import


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import-ipynb", "{tmp}", "--owner", "nobody@example.com"], "--owner: no user with"),
        (["export-ipynb", "{tmp}/out", "--user", "nobody@example.com"], "--user: no user with"),
    ],
)
def test_unknown_users_are_one_line_errors(
    database_url: str, args: list[str], message: str, tmp_path: Path
) -> None:
    result = cellar(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"cellar: error: {message}"), result.stderr
    assert "Traceback" not in result.stderr
