"""The README's promises, run: its first API calls against a real server, its command lines.

The ``sh`` block under "First API calls" is taken from README.md as it is,
pointed at a ``cellar serve`` on a free port (and a fresh email, so the
block can run on a shared database), and run with bash.  Its comment lines
that start with ``{`` are the answers it promises, in order, ``…`` standing
for anything: every line the block prints must match the next of them.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import running_server

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_BASE = "http://127.0.0.1:8000"
DOCUMENTED_EMAIL = "ada@example.com"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def fenced_blocks(text: str, language: str = "sh") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def promised_answers(block: str) -> list[re.Pattern[str]]:
    answers = [line[2:] for line in block.splitlines() if line.startswith("# {")]
    return [re.compile(".*".join(map(re.escape, answer.split("…")))) for answer in answers]


def test_first_api_calls_answer_as_the_readme_says(service_env: dict[str, str]) -> None:
    blocks = fenced_blocks(section("First API calls"))
    assert len(blocks) == 1, "one block to copy"
    block = blocks[0]
    assert DOCUMENTED_BASE in block and DOCUMENTED_EMAIL in block
    promised = promised_answers(block)
    assert len(promised) >= 5, "register, list, edit, conflict, insert"

    email = f"readme-{uuid.uuid4().hex[:10]}@example.com"
    with running_server(service_env) as base_url:
        script = block.replace(DOCUMENTED_BASE, base_url).replace(DOCUMENTED_EMAIL, email)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = result.stdout.splitlines()
    assert len(printed) == len(promised), (printed, [p.pattern for p in promised])
    for line, pattern in zip(printed, promised, strict=True):
        assert pattern.fullmatch(line.replace(email, DOCUMENTED_EMAIL)), (pattern.pattern, line)


def test_command_lines_name_the_venv_consistently() -> None:
    """No README block runs a bare ``cellar``/``piccolo``: it is ``.venv/bin/…`` everywhere."""
    commands = 0
    for block in fenced_blocks(README.read_text()):
        for line in block.splitlines():
            commands += line.count(".venv/bin/cellar ") + line.count(".venv/bin/piccolo ")
            code = line.split("#", 1)[0]  # comments may name things freely
            bare = re.findall(r"(?:^|[\s;&|(])(cellar|piccolo) ", code)
            assert bare == [], f"run it as .venv/bin/{bare[0]}: {line}"
    assert commands >= 10
