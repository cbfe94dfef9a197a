"""The process's fan-out: one topic per followed notebook, read once, handed to every subscriber.

The events table is the truth; a notification (``app.realtime.listener``)
only says "notebook X has reached seq N".  Each notebook someone follows on
this instance has a ``Topic`` whose single pump task reads the new events
once, by primary key range after the last seq it read, and hands the same
list to each of its subscribers: one query per notebook per wake-up, not
one per client.  When the listening connection was lost, ``wake_all`` has
every topic read again from where it stopped, so nothing committed while
the notifications could not arrive is missed.

Each ``Subscriber`` remembers the last seq it sent its client (its
position) and never sends one at or below it again, so an event read both
by the subscriber's own catch-up and by its topic goes out once; when
events arrive with a hole before them (the subscriber joined while its
topic was behind, say), the hole is read from the table first.  So every
client gets every event after its ``since``, in seq order, exactly once,
whatever the timing of notifications, catch-up and reconnections.

A client that does not read fast enough has its events queued here up to
``max_queued``; one more and it is closed with 4429 (it resumes with
``since``), its queue dropped at once: memory per subscriber is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from app.observability.metrics import REALTIME_LAG
from app.realtime.protocol import CLOSE_GOING_AWAY, CLOSE_GONE, CLOSE_NOT_FOUND, CLOSE_TOO_SLOW
from app.system.outage import is_unreachable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from app.store.events import Event

    # (notebook id, after this seq, at most this many) → events, oldest first.
    Fetch = Callable[[str, int, int], Awaitable[list[Event]]]

logger = logging.getLogger(__name__)

PAGE = 500  # events read per statement, by a topic or a catch-up
RETRY_MIN, RETRY_MAX = 0.05, 2.0  # seconds between reads while the database is away
HEARTBEAT = None  # what ``Subscriber.events`` yields when a heartbeat is due


class Subscriber:
    """One client following one notebook from ``position`` (the last seq it has)."""

    __slots__ = (
        "_done",
        "_queue",
        "_ready",
        "close_code",
        "close_reason",
        "max_queued",
        "notebook_id",
        "position",
    )

    def __init__(self, notebook_id: str, position: int, max_queued: int) -> None:
        self.notebook_id = notebook_id
        self.position = position
        self.max_queued = max_queued
        self.close_code: int | None = None
        self.close_reason = ""
        # Each event with when its topic was woken to read it (about its commit: the lag).
        self._queue: deque[tuple[Event, float]] = deque()
        self._ready = asyncio.Event()  # something was queued (or the end came)
        self._done = asyncio.Event()  # closed by the server side

    @property
    def queued(self) -> int:
        return len(self._queue)

    def push(self, events: list[Event], woken: float | None = None) -> None:
        """Queue what the topic read (only what this client has not had yet).

        ``woken``: when the notification that made the topic read them arrived
        (``time.time()``), the commit as this process knows it.
        """
        if self.close_code is not None:
            return
        when = time.time() if woken is None else woken
        for event in events:
            if event.seq > self.position:
                self._queue.append((event, when))
        if len(self._queue) > self.max_queued:
            self.close(
                CLOSE_TOO_SLOW,
                f"more than {self.max_queued} events queued: reconnect with since",
            )
            return
        self._ready.set()

    def close(self, code: int, reason: str) -> None:
        """End the subscription with this close code; its queue goes at once."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._queue.clear()
        self._ready.set()
        self._done.set()

    async def closed(self) -> None:
        """Return once the subscription has been closed by the server side."""
        await self._done.wait()

    async def events(self, fetch: Fetch, heartbeat: float) -> AsyncIterator[Event | None]:
        """Every event after ``position``, in seq order, each once; None when a heartbeat is due.

        First the catch-up from the table, page by page (one page in memory,
        however far behind the client is), then what the topic queues.  Ends
        when the subscription is closed (``close_code`` says why).
        """
        async for event in self._read(fetch, upto=None):
            yield event
        while self.close_code is None:
            if not self._queue:
                self._ready.clear()
                try:
                    async with asyncio.timeout(heartbeat):
                        await self._ready.wait()
                except TimeoutError:
                    yield HEARTBEAT
                continue
            event, woken = self._queue.popleft()
            if event.seq <= self.position:
                continue
            if event.seq > self.position + 1:  # a hole: read it from the table first
                async for missing in self._read(fetch, upto=event.seq - 1):
                    yield missing
                if self.close_code is not None or event.seq <= self.position:
                    continue
            self.position = event.seq
            REALTIME_LAG.observe(max(0.0, time.time() - woken))
            yield event
            if event.op == "trash" and not self._queue:
                self._trashed()

    async def _read(self, fetch: Fetch, upto: int | None) -> AsyncIterator[Event]:
        """Events after ``position`` from the table, up to ``upto`` (None: all there are)."""
        while self.close_code is None and (upto is None or self.position < upto):
            page = await fetch(self.notebook_id, self.position, PAGE)
            if upto is not None and (not page or page[0].seq != self.position + 1):
                # The hole's events are no longer there (pruned meanwhile): resume with since.
                self.close(CLOSE_GONE, "events after since were pruned")
                return
            for event in page:
                if upto is not None and event.seq > upto:
                    return
                self.position = event.seq
                yield event
            if len(page) < PAGE:
                # The last event there is: a notebook now in the trash is followed no more
                # (a trash followed by its untrash is history like any other).
                if page and page[-1].op == "trash" and upto is None:
                    self._trashed()
                return

    def _trashed(self) -> None:
        self.close(CLOSE_NOT_FOUND, "the notebook went to the trash")


class Topic:
    """The subscribers of one notebook on this instance and the last seq read for them."""

    __slots__ = ("notebook_id", "recheck", "seq", "subscribers", "task", "wanted", "woken")

    def __init__(self, notebook_id: str, seq: int) -> None:
        self.notebook_id = notebook_id
        self.seq = seq  # the last seq read from the table and handed on
        self.wanted = seq  # the highest seq a notification announced
        self.recheck = False  # read again even without a notification (after a reconnect)
        self.woken: float | None = None  # when the first notification not yet read arrived
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task[None] | None = None

    @property
    def behind(self) -> bool:
        return self.recheck or self.wanted > self.seq


class Hub:
    """Every topic of this process; fed by the listener, read by the WebSocket and SSE routes."""

    def __init__(self, fetch: Fetch, max_queued: int) -> None:
        self.fetch = fetch
        self.max_queued = max_queued
        self.topics: dict[str, Topic] = {}
        self.subscribers = 0
        # Told of every notification, followed or not (the read cache forgets old answers).
        self.observers: list[Callable[[str, int], None]] = []

    def subscribe(self, notebook_id: str, position: int, current: int) -> Subscriber:
        """Follow a notebook from ``position``; ``current`` is its seq as just read."""
        topic = self.topics.get(notebook_id)
        if topic is None:
            topic = self.topics[notebook_id] = Topic(notebook_id, current)
        subscriber = Subscriber(notebook_id, position, self.max_queued)
        topic.subscribers.add(subscriber)
        self.subscribers += 1
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        topic = self.topics.get(subscriber.notebook_id)
        if topic is None or subscriber not in topic.subscribers:
            return
        topic.subscribers.discard(subscriber)
        self.subscribers -= 1
        if not topic.subscribers:
            del self.topics[subscriber.notebook_id]
            if topic.task is not None:
                topic.task.cancel()

    def notify(self, notebook_id: str, seq: int) -> None:
        """A notification: ``notebook_id`` has committed its event ``seq``."""
        for observer in self.observers:
            observer(notebook_id, seq)
        topic = self.topics.get(notebook_id)
        if topic is None:
            return
        if seq > topic.wanted:
            topic.wanted = seq
            if topic.woken is None:
                topic.woken = time.time()
        self._pump(topic)

    def wake_all(self) -> None:
        """Read every topic again from where it stopped (notifications may have been lost)."""
        for topic in self.topics.values():
            topic.recheck = True
            self._pump(topic)

    def swept(self, live: dict[str, int]) -> None:
        """What a sweep found: the followed notebooks still there → their last seq.

        The others were deleted for good: their subscribers are closed (4404).
        A seq beyond what a topic has read is a lost wake-up: read it now.
        """
        for notebook_id, topic in list(self.topics.items()):
            seq = live.get(notebook_id)
            if seq is None:
                for subscriber in list(topic.subscribers):
                    subscriber.close(CLOSE_NOT_FOUND, "the notebook was deleted")
            elif seq > topic.seq:
                self.notify(notebook_id, seq)

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server stopping") -> None:
        """End every subscription (the process is stopping)."""
        for topic in list(self.topics.values()):
            for subscriber in list(topic.subscribers):
                subscriber.close(code, reason)

    def _pump(self, topic: Topic) -> None:
        if topic.behind and (topic.task is None or topic.task.done()):
            topic.task = asyncio.create_task(self._run(topic), name=f"realtime:{topic.notebook_id}")

    async def _run(self, topic: Topic) -> None:
        """Read the topic's new events and hand them on until it is up to date."""
        wait = RETRY_MIN
        while topic.subscribers and topic.behind:
            topic.recheck = False
            woken, topic.woken = topic.woken, None
            try:
                page = await self.fetch(topic.notebook_id, topic.seq, PAGE)
            except Exception as exc:
                if not is_unreachable(exc):
                    logger.exception("realtime: reading the events of a notebook failed")
                topic.recheck = True  # the listener's reconnection wakes it too
                topic.woken = topic.woken or woken
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MAX)
                continue
            wait = RETRY_MIN
            if not page:
                topic.wanted = topic.seq  # announced, but read already (or rolled into a page)
                continue
            topic.seq = page[-1].seq
            if topic.seq > topic.wanted:
                topic.wanted = topic.seq
            if len(page) == PAGE:
                topic.recheck = True
            for subscriber in list(topic.subscribers):
                subscriber.push(page, woken)
