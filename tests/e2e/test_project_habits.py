"""Habits of a maintained project (issue 16, item 8), kept true by tests.

The pre-commit hooks run offline from the project's virtual environment and
do catch a lint error; the changelog has a section for the version in
``pyproject.toml``; every file CONTRIBUTING.md and the changelog point at
exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


def pre_commit(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("pre-commit")
    return subprocess.run(
        [str(executable), *args],
        cwd=ROOT,
        env={**os.environ, "PRE_COMMIT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_pre_commit_hooks_are_local_and_use_the_venv() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "nothing to download"
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert set(hooks) == {"ruff-check", "ruff-format", "mypy"}
    for hook in hooks.values():
        assert hook["language"] == "system"
        assert hook["entry"].startswith(".venv/bin/"), hook["entry"]


def test_pre_commit_passes_clean_code_and_stops_a_lint_error(tmp_path: Path) -> None:
    if not (VENV_BIN / "ruff").exists() or not (VENV_BIN / "mypy").exists():
        pytest.skip(f"the hooks run {VENV_BIN}/ruff and mypy: create .venv as CONTRIBUTING.md says")
    home = tmp_path / "pre-commit-home"
    validated = pre_commit("validate-config", home=home)
    assert validated.returncode == 0, validated.stdout + validated.stderr

    clean = pre_commit("run", "--files", "app/__init__.py", home=home)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert re.search(r"ruff check\.+Passed", clean.stdout), clean.stdout
    assert re.search(r"mypy\.+Passed", clean.stdout), clean.stdout

    probe = tmp_path / "probe.py"
    probe.write_text("import os\n")  # F401: imported but unused
    dirty = pre_commit("run", "--files", str(probe), home=home)
    assert dirty.returncode == 1, dirty.stdout + dirty.stderr
    assert re.search(r"ruff check\.+Failed", dirty.stdout), dirty.stdout


def test_the_changelog_has_the_current_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert version in headings, f"CHANGELOG.md has no section for {version}: {headings}"


@pytest.mark.parametrize("document", ["CONTRIBUTING.md", "CHANGELOG.md", "README.md"])
def test_the_files_a_document_names_exist(document: str) -> None:
    text = (ROOT / document).read_text()
    named = set(re.findall(r"`((?:app|tests|bench|docs|piccolo_migrations)/[\w./-]+)`", text))
    named |= set(re.findall(r"\]\(((?!https?:|#)[^)#]+)\)", text))
    assert named, document
    missing = sorted(name for name in named if not (ROOT / name.rstrip("/")).exists())
    assert missing == [], f"{document} names files that do not exist: {missing}"
