"""Realtime use cases (SPEC §11): who is asking, where they start, tickets, the running parts.

``RealtimeService`` is built once per app: it owns the process's hub and
its one listening connection (started and stopped by the app's lifespan),
authenticates a subscriber by token or ticket, and decides where a
subscription starts.  The routes (``app.realtime.controllers``) only move
bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from typing import TYPE_CHECKING

from app.auth.tokens import TokenError
from app.database import connection, listen_config
from app.errors import Gone, NotFound, Unauthorized
from app.realtime.hub import Hub
from app.realtime.listener import Listener
from app.realtime.schemas import EventTicket
from app.replicas import routing, tokens
from app.store import events as events_store
from app.store import realtime as store
from app.system.outage import is_unreachable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from uuid import UUID

    from app.auth.services import AuthService
    from app.auth.tokens import TokenService
    from app.realtime.hub import Subscriber
    from app.settings import Settings
    from app.store.events import Event

logger = logging.getLogger(__name__)

TICKET_SECONDS = 60
BAD_TICKET = "invalid, used or expired ticket"

# The services of this process whose streams a stopping server ends (``close_streams``).
_RUNNING: set[RealtimeService] = set()


class Position:
    """Where a subscription starts: after ``position``; ``current`` is the notebook's seq."""

    __slots__ = ("current", "position")

    def __init__(self, position: int, current: int) -> None:
        self.position = position
        self.current = current


class RealtimeService:
    def __init__(self, settings: Settings, tokens: TokenService, auth: AuthService) -> None:
        self.tokens = tokens
        self.auth = auth
        self.heartbeat = settings.realtime_heartbeat_seconds
        self.auth_timeout = settings.realtime_auth_timeout_seconds
        self.hub = Hub(self._fetch, max_queued=settings.realtime_max_queued)
        self.listener = Listener(self.hub, listen_config(settings))
        self._sweeper: asyncio.Task[None] | None = None
        # With read replicas: per followed notebook, the primary's WAL position read after
        # the latest read of its events (the most advanced of them), so past every event
        # read so far: the consistency token sent with each event.
        self._positions: dict[str, int] = {}

    # -- lifetime ------------------------------------------------------------------------

    def start(self) -> None:
        """Start listening (in the background: a database still starting is retried)."""
        self.listener.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="realtime-sweeper")
        _RUNNING.add(self)

    async def stop(self) -> None:
        _RUNNING.discard(self)
        self.hub.close_all()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.listener.stop()

    async def sweep(self) -> None:
        """Catch what no notification says, once per heartbeat period, in one statement.

        A purge (``DELETE …?purge=true``) or the admin deletes the row and, by
        cascade, its events: nothing is notified, and the subscribers are
        closed (4404).  A wake-up is sent after its change's commit, so one
        can be lost (the process stopped in between): a followed notebook
        whose seq is past what its topic read is read now.
        """
        followed = list(self.hub.topics)
        if not followed:
            return
        async with connection() as conn:
            live = await store.live(conn, followed)
        self.hub.swept(live)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.sweep()
            except Exception as exc:
                if not is_unreachable(exc):
                    logger.exception("realtime: checking the followed notebooks failed")

    # -- who is asking -------------------------------------------------------------------

    async def user_from_token(self, token: str) -> UUID:
        """The user a bearer token speaks for, as the HTTP routes find them."""
        try:
            identity = await self.tokens.verify_async(token)
        except TokenError as exc:
            raise Unauthorized(str(exc)) from None
        return await self.auth.resolve(identity)

    async def user_from_ticket(self, ticket: str, notebook_id: str) -> UUID:
        """Use a ticket up: its user, when it is valid and was issued for this notebook."""
        async with connection() as conn:
            redeemed = await store.redeem_ticket(conn, _ticket_hash(ticket))
        if redeemed is None or not redeemed.valid or redeemed.notebook_id != notebook_id:
            raise Unauthorized(BAD_TICKET)
        return redeemed.user_id

    async def issue_ticket(self, user_id: UUID, notebook_id: str) -> EventTicket:
        """A single-use ticket for ``?ticket=``, for this notebook and user, for 60 s."""
        ticket = secrets.token_urlsafe(32)
        async with connection() as conn:
            stored = await store.issue_ticket(
                conn, notebook_id, user_id, _ticket_hash(ticket), TICKET_SECONDS
            )
        if not stored:
            raise NotFound("notebook not found")
        return EventTicket(ticket=ticket, expires_in=TICKET_SECONDS)

    # -- following a notebook ------------------------------------------------------------

    async def position(self, user_id: UUID, notebook_id: str, since: int | None) -> Position:
        """Where to start: after ``since``, or from now when absent or beyond the last seq.

        404 for a notebook that is not the user's (or is in the trash), 410 when
        events after ``since`` are no longer kept.
        """
        async with connection() as conn:
            start = await store.start(conn, notebook_id, user_id)
        if start is None:
            raise NotFound("notebook not found")
        if since is None or since >= start.seq:
            return Position(start.seq, start.seq)
        oldest = start.oldest if start.oldest is not None else start.seq + 1
        if since + 1 < oldest:
            raise Gone(oldest, "events after since were pruned; follow from oldest_seq - 1")
        return Position(since, start.seq)

    def subscribe(self, notebook_id: str, start: Position) -> Subscriber:
        return self.hub.subscribe(notebook_id, start.position, start.current)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.hub.unsubscribe(subscriber)
        if subscriber.notebook_id not in self.hub.topics:
            self._positions.pop(subscriber.notebook_id, None)

    def token(self, notebook_id: str) -> str | None:
        """The consistency token for an event of this notebook already read; None without
        replicas.

        Every event a subscriber sends was read by a ``_fetch`` that then stored a
        position read after it, and positions only grow: a replica past the token
        holds the event (its commit lies before the position).
        """
        position = self._positions.get(notebook_id)
        return None if position is None else tokens.format_lsn(position)

    def events(self, subscriber: Subscriber) -> AsyncIterator[Event | None]:
        """The subscriber's events, each once, in seq order; None: a heartbeat is due."""
        return subscriber.events(self._fetch, self.heartbeat)

    async def _fetch(self, notebook_id: str, since: int, limit: int) -> list[Event]:
        async with connection() as conn:
            events = await events_store.after(conn, notebook_id, since, limit)
        replicas = routing.installed()
        if events and replicas is not None:
            position = await replicas.primary_position()
            if position is not None and position > self._positions.get(notebook_id, -1):
                self._positions[notebook_id] = position
        return events


def close_streams() -> None:
    """End every realtime stream of this process: the server is stopping.

    uvicorn waits for open responses before it stops, and an SSE stream
    never ends by itself; WebSockets get their close from uvicorn too.
    """
    for service in list(_RUNNING):
        service.hub.close_all()


def _ticket_hash(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode("utf-8", "surrogatepass")).digest()
