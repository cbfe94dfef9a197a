"""File names from notebook names (``app.ipynb.filenames``) and writing them to disk."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ipynb.filenames import content_disposition, file_name, stem
from app.legacy.exporter import write_atomically

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, "Untitled"),
        ("", "Untitled"),
        ("  ", "Untitled"),
        ("...", "Untitled"),
        (".hidden", "hidden"),
        ("a/b\\c", "a_b_c"),
        ('x: "y" <z>|*?', "x_ _y_ _z____"),
        ("tab\there\n", "tab_here_"),
        ("Ünïcödé ✓", "Ünïcödé ✓"),
    ],
)
def test_stem(name: str | None, expected: str) -> None:
    assert stem(name) == expected


def test_same_names_get_numbers_case_insensitively() -> None:
    taken: set[str] = set()
    names = [file_name(n, taken) for n in ("Report", "report", "Report", "Report (2)")]
    assert names == ["Report.ipynb", "report (2).ipynb", "Report (3).ipynb", "Report (2) (2).ipynb"]


@given(st.text(max_size=300))
def test_file_names_are_safe_and_fit(name: str) -> None:
    result = file_name(name, {"untitled.ipynb"})
    assert result.endswith(".ipynb")
    assert len(result.encode()) <= 255
    assert not result.startswith(".")
    assert not any(char in result for char in '/\\\x00:*?"<>|')
    assert all(ord(char) >= 32 and char != "\x7f" for char in result)


@given(st.text(max_size=300))
def test_content_disposition_is_ascii_and_carries_the_name(name: str) -> None:
    header = content_disposition(name)
    assert header.isascii()
    assert header.startswith('attachment; filename="')
    fallback = header.split('"')[1]
    assert fallback.endswith(".ipynb") and "\\" not in fallback and ";" not in fallback


def test_long_names_can_be_written(tmp_path: Path) -> None:
    """The longest file name (255 bytes) and its temporary twin both fit on disk."""
    for name in ("t" * 300, "é" * 300, "✓" * 300):
        path = tmp_path / file_name(name)
        write_atomically(path, b"{}", 0o644)
        assert path.read_bytes() == b"{}"
        assert path.stat().st_mode & 0o777 == 0o644
    assert len(list(tmp_path.iterdir())) == 3  # no temporary file left behind
