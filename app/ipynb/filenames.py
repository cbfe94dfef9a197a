"""A notebook's name as a file name: in a download's header and on disk (pure, no I/O).

A name is free text (≤ 255 characters, anything but U+0000), a file name is
not: ``/`` and ``\\`` would make directories, control characters and quotes
break headers and terminals, and some systems refuse ``:*?"<>|``.

* ``content_disposition``: RFC 6266.  ``filename="…"`` is the ASCII
  fallback every client understands (other characters become ``_``);
  ``filename*=UTF-8''…`` (RFC 8187, percent-encoded) carries the name
  itself when it is not plain ASCII, and browsers prefer it.
* ``file_name``: for ``cellar export-ipynb``: the name with the characters
  above replaced, no leading dot (no hidden files), at most 255 bytes of
  UTF-8 (the usual limit of a file name) ending in ``.ipynb``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

SUFFIX = ".ipynb"
DEFAULT_STEM = "Untitled"
MAX_FILE_NAME_BYTES = 255
# Path separators, control characters, and what Windows refuses in a file name.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_NOT_TOKEN_ASCII = re.compile(r'[^\x20-\x7e]|["\\%;]')


def stem(name: str | None) -> str:
    """The name without unsafe characters and surrounding blanks or dots; never empty."""
    cleaned = _UNSAFE.sub("_", name or "").strip().strip(".").strip()
    return cleaned or DEFAULT_STEM


def content_disposition(name: str | None) -> str:
    """``attachment; filename="<name>.ipynb"`` (plus ``filename*`` for non-ASCII names)."""
    full = stem(name) + SUFFIX
    fallback = _NOT_TOKEN_ASCII.sub("_", full)
    header = f'attachment; filename="{fallback}"'
    if fallback != full:
        header += f"; filename*=UTF-8''{quote(full, safe='')}"
    return header


def file_name(name: str | None, taken: set[str] | None = None) -> str:
    """A file name for the notebook, not in ``taken`` (compared case-insensitively).

    Two notebooks of one name get ``name.ipynb`` and ``name (2).ipynb``.
    The result is added to ``taken``.
    """
    base = stem(name)
    taken = set() if taken is None else taken
    number = 1
    while True:
        extra = "" if number == 1 else f" ({number})"
        room = MAX_FILE_NAME_BYTES - len((extra + SUFFIX).encode())
        candidate = _cut(base, room) + extra + SUFFIX
        if candidate.casefold() not in taken:
            taken.add(candidate.casefold())
            return candidate
        number += 1


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore").rstrip() or DEFAULT_STEM
