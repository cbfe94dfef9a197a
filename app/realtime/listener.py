"""The process's one LISTEN connection: wake-ups for the hub, reconnected by itself.

Every mutation sends ``pg_notify('cellar_events', '<seq>:<notebook_id>')``
once its transaction has committed (docs/history.md, "The wake-up"), never
for one that rolled back: a hint that the event is in the table.
One dedicated connection per process (not per client, and not from the
pool: a pooled connection is reset and shared) listens on that channel and
passes each notification to the hub, which reads the events from the table.

When the connection is lost (PostgreSQL restarted, the network cut) the
listener reconnects with a growing backoff (50 ms … 2 s), LISTENs again,
and only then has every topic read the table again from where it stopped:
whatever committed while no notification could arrive is read then, and
whatever commits afterwards is notified.  A connection that silently stopped
answering is found by a ``SELECT 1`` every ``check_interval`` seconds.

Behind PgBouncer in transaction pooling mode LISTEN does not work through
the pooler: ``DATABASE_LISTEN_URL`` points this connection straight at
PostgreSQL (``app.database.listen_config``, docs/realtime.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.realtime.hub import Hub

logger = logging.getLogger(__name__)

CHANNEL = "cellar_events"
BACKOFF_MIN, BACKOFF_MAX = 0.05, 2.0


def parse_payload(payload: str) -> tuple[str, int] | None:
    """``'<seq>:<notebook_id>'`` → (notebook id, seq); None when malformed."""
    seq, sep, notebook_id = payload.partition(":")
    if not sep or not notebook_id or not seq.isdigit():
        return None
    return notebook_id, int(seq)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _: event.set()


class Listener:
    def __init__(
        self, hub: Hub, connect_options: dict[str, Any], check_interval: float = 5.0
    ) -> None:
        self.hub = hub
        self.connect_options = connect_options
        self.check_interval = check_interval
        self.connected = asyncio.Event()  # set while LISTEN is in place
        self.connections = 0  # how many times it has connected (tests, logs)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notified(self, _: object, __: int, ___: str, payload: object) -> None:
        parsed = parse_payload(str(payload))
        if parsed is None:
            logger.warning("realtime: ignored a malformed notification %r", str(payload)[:100])
            return
        self.hub.notify(*parsed)

    async def _run(self) -> None:
        backoff = BACKOFF_MIN
        lost_before = False
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(**self.connect_options)
                closed = asyncio.Event()
                conn.add_termination_listener(_setter(closed))
                await conn.add_listener(CHANNEL, self._notified)
                self.connections += 1
                self.connected.set()
                if lost_before:
                    logger.info("realtime: listening again; subscribers catch up from the table")
                lost_before = False
                backoff = BACKOFF_MIN
                # LISTEN is in place: anything committed before it is in the table now.
                self.hub.wake_all()
                while not closed.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.check_interval):
                            await closed.wait()
                    if not closed.is_set():
                        await conn.fetchval("SELECT 1", timeout=self.check_interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost_before:
                    logger.warning(
                        "realtime: the listening connection is down (%s); reconnecting",
                        type(exc).__name__,
                    )
                lost_before = True
            else:
                if not lost_before:
                    logger.warning("realtime: the listening connection closed; reconnecting")
                lost_before = True
            finally:
                self.connected.clear()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
