"""The consistency token: a WAL position (LSN) of the primary, as PostgreSQL writes it.

A mutation's answer carries ``Cellar-Consistency: <LSN>``, the primary's WAL
insert position read after the mutation committed: every change the client has
seen an answer for lies before it.  A read that sends the token back may be
served by a replica only when that replica has replayed at least that far
(``pg_last_wal_replay_lsn()``), so the client never reads older data than it
wrote.  The token is PostgreSQL's own text form (``16/B374D848``): opaque to
clients, readable by operators, comparable as a 64-bit number here.
"""

from __future__ import annotations

import re

HEADER = "Cellar-Consistency"
HEADER_KEY = HEADER.lower().encode("latin-1")  # as ASGI headers name it

_LSN = re.compile(r"^\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*$")


class MalformedToken(ValueError):
    """The header is not an LSN such as ``0/16B3748``."""


def parse(text: str) -> int:
    """``"16/B374D848"`` → the position as one number (high word, low word)."""
    match = _LSN.match(text)
    if match is None:
        raise MalformedToken(f"expected a WAL position such as 0/16B3748, got {text[:40]!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(position: int) -> str:
    """The number back in PostgreSQL's text form (upper-case hex, as ``pg_lsn`` prints)."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"
