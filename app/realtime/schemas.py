"""Realtime bodies (SPEC §11)."""

from __future__ import annotations

from typing import Annotated

import msgspec


class EventTicket(msgspec.Struct, frozen=True):
    """A ticket for ``GET /notebooks/{id}/events?ticket=`` (an ``EventSource`` sends no header)."""

    ticket: Annotated[
        str,
        msgspec.Meta(
            description="Use once, within `expires_in` seconds, for this notebook only, as "
            "`?ticket=` of the events stream (SSE or WebSocket)."
        ),
    ]
    expires_in: Annotated[int, msgspec.Meta(description="Seconds the ticket stays valid.")]
