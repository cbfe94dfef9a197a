"""``/notebooks/{id}/events``: a WebSocket, Server-Sent Events, and tickets (SPEC §11).

The events route authenticates by itself (``exclude_from_auth``): a
WebSocket's token comes in ``Sec-WebSocket-Protocol: bearer, <token>`` or
as the first message, an ``EventSource`` brings a ticket, and a WebSocket
is accepted before it is refused, so that the refusal is a close code a
browser can read (4401, 4404, 4410, 4400) rather than a failed handshake.
SSE answers the same refusals as HTTP statuses, with the usual error body.
The ticket route sits behind the bearer middleware like every other route.

The SSE route is left out of the OpenAPI document: a stream that never
ends cannot be described or fuzzed as a request/response (docs/realtime.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from litestar import Controller, Request, Response, WebSocket, get, post, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED

from app.auth.guards import AuthUser
from app.errors import CellarError, InvalidInput, Unauthorized
from app.observability.metrics import REALTIME_CLIENTS, REALTIME_EVENTS
from app.realtime import protocol
from app.realtime.schemas import EventTicket
from app.realtime.services import RealtimeService
from app.system.openapi import BEARER, error_responses
from app.system.outage import DATABASE, is_unreachable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from uuid import UUID

    from app.realtime.hub import Subscriber
    from app.realtime.services import Position

logger = logging.getLogger(__name__)

EVENTS_PATH = "/notebooks/{notebook_id:str}/events"
EVENT_STREAM = "text/event-stream"
NO_TOKEN = "missing bearer token"  # as the bearer middleware says it
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason
CLOSE_TIMEOUT = 10.0  # seconds a close frame may wait behind a client that does not read


class EventsTicketController(Controller):
    path = EVENTS_PATH
    tags = ["realtime"]
    security = BEARER

    @post(
        "/ticket",
        operation_id="issueEventsTicket",
        summary="Get a ticket for the events stream",
        status_code=HTTP_201_CREATED,
        responses=error_responses(401, 404),
    )
    async def issue_ticket(
        self,
        notebook_id: FromPath[str],
        current_user: NamedDependency[AuthUser],
        realtime: NamedDependency[RealtimeService],
    ) -> EventTicket:
        """A single-use ticket, valid 60 s for this notebook, for `GET …/events?ticket=`.

        A browser's `EventSource` cannot send an `Authorization` header and a bearer token
        never goes in a URL: this ticket does instead, once.
        """
        return await realtime.issue_ticket(current_user.id, notebook_id)


class EventsStreamController(Controller):
    path = EVENTS_PATH
    include_in_schema = False
    opt = {"exclude_from_auth": True}  # the route authenticates by itself

    @get(operation_id="followNotebookEvents", summary="Follow a notebook's events (SSE)")
    async def stream(
        self,
        request: Request[Any, Any, Any],
        notebook_id: FromPath[str],
        realtime: NamedDependency[RealtimeService],
    ) -> Response[Any]:
        """The notebook's events as Server-Sent Events, after `since` or `Last-Event-ID`."""
        if EVENT_STREAM not in request.headers.get("accept", ""):
            return Response(
                {
                    "status_code": 406,
                    "detail": "Accept: text/event-stream, or open a WebSocket on this path",
                },
                status_code=406,
            )
        # EventSource sends an empty Last-Event-ID when its last event had no id: absent.
        last_event_id = request.headers.get("last-event-id", "").strip() or None
        field = "Last-Event-ID" if last_event_id is not None else "since"
        try:
            since = protocol.parse_position(
                last_event_id if last_event_id is not None else request.query_params.get("since")
            )
        except protocol.BadPosition as exc:
            raise InvalidInput(field, str(exc)) from None
        user_id = await _http_user(request, notebook_id, realtime)
        start = await realtime.position(user_id, notebook_id, since)
        DATABASE.reachable()
        return Stream(
            _sse_frames(realtime, notebook_id, start),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


async def _http_user(
    request: Request[Any, Any, Any], notebook_id: str, realtime: RealtimeService
) -> UUID:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await realtime.user_from_token(token.strip())
    ticket = request.query_params.get("ticket")
    if ticket:
        return await realtime.user_from_ticket(ticket, notebook_id)
    raise Unauthorized(NO_TOKEN)


async def _sse_frames(
    realtime: RealtimeService, notebook_id: str, start: Position
) -> AsyncIterator[bytes]:
    """The stream's bytes; subscribed here, so that whatever ends the stream unsubscribes."""
    subscriber = realtime.subscribe(notebook_id, start)
    REALTIME_CLIENTS.inc()
    try:
        yield protocol.SSE_RETRY
        async for event in realtime.events(subscriber):
            if event is None:
                yield protocol.SSE_HEARTBEAT
                continue
            yield protocol.sse_event(event, realtime.token(notebook_id))
            REALTIME_EVENTS.inc()
        if subscriber.close_code is not None:
            yield protocol.sse_close(subscriber.close_code, subscriber.close_reason)
    except Exception as exc:
        if not is_unreachable(exc):
            logger.exception("realtime: an event stream failed")
    finally:
        REALTIME_CLIENTS.dec()
        realtime.unsubscribe(subscriber)


@websocket(EVENTS_PATH, opt={"exclude_from_auth": True})
async def events_socket(
    socket: WebSocket[Any, Any, Any],
    notebook_id: FromPath[str],
    realtime: NamedDependency[RealtimeService],
) -> None:
    """The notebook's events over a WebSocket (SPEC §11): accepted first, refused by close code."""
    token = protocol.bearer_subprotocol(socket.scope.get("subprotocols", []))
    await socket.accept(subprotocols=protocol.BEARER if token is not None else None)
    try:
        subscriber = await _open(socket, notebook_id, realtime, token)
    except WebSocketDisconnect:
        return
    except CellarError as exc:
        await _close(socket, protocol.close_code(exc.status_code), exc.detail)
        return
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        DATABASE.failed(exc)
        await _close(socket, protocol.CLOSE_TRY_AGAIN_LATER, "the database is unavailable")
        return
    REALTIME_CLIENTS.inc()
    try:
        await _follow(socket, subscriber, realtime)
    finally:
        REALTIME_CLIENTS.dec()
        realtime.unsubscribe(subscriber)


async def _open(
    socket: WebSocket[Any, Any, Any],
    notebook_id: str,
    realtime: RealtimeService,
    token: str | None,
) -> Subscriber:
    """Authenticate, check ``since`` and the notebook, subscribe; a refusal raises."""
    try:
        since = protocol.parse_position(socket.query_params.get("since"))
    except protocol.BadPosition as exc:
        raise InvalidInput("since", str(exc)) from None
    ticket = socket.query_params.get("ticket")
    if token is not None:
        user_id = await realtime.user_from_token(token)
    elif ticket:
        user_id = await realtime.user_from_ticket(ticket, notebook_id)
    else:
        try:
            async with asyncio.timeout(realtime.auth_timeout):
                first = await socket.receive_data("text")
        except TimeoutError:
            raise Unauthorized('no token: send {"token": …} first') from None
        token = protocol.token_message(first)
        if token is None:
            raise Unauthorized('expected {"token": …} as the first message')
        user_id = await realtime.user_from_token(token)
    start = await realtime.position(user_id, notebook_id, since)
    DATABASE.reachable()
    return realtime.subscribe(notebook_id, start)


async def _follow(
    socket: WebSocket[Any, Any, Any], subscriber: Subscriber, realtime: RealtimeService
) -> None:
    """Send events until the client leaves or the server ends the subscription."""
    sender = asyncio.create_task(_send_events(socket, subscriber, realtime))
    reader = asyncio.create_task(_until_disconnect(socket))
    closed = asyncio.create_task(subscriber.closed())
    try:
        done, _ = await asyncio.wait({sender, reader, closed}, return_when="FIRST_COMPLETED")
    finally:
        for task in (sender, reader, closed):
            task.cancel()
        await asyncio.gather(sender, reader, closed, return_exceptions=True)
    if reader in done:
        return  # the client left: nothing to close
    if sender in done and not sender.cancelled() and sender.exception() is not None:
        exc = sender.exception()
        if isinstance(exc, (WebSocketDisconnect, OSError)):
            return
        if exc is not None and is_unreachable(exc):
            await _close(socket, protocol.CLOSE_TRY_AGAIN_LATER, "the database is unavailable")
            return
        logger.error("realtime: a WebSocket failed", exc_info=exc)
        await _close(socket, 1011, "internal error")
        return
    await _close(
        socket, subscriber.close_code or protocol.CLOSE_NORMAL, subscriber.close_reason or ""
    )


async def _send_events(
    socket: WebSocket[Any, Any, Any], subscriber: Subscriber, realtime: RealtimeService
) -> None:
    async for event in realtime.events(subscriber):
        if event is None:
            await socket.send_data(protocol.heartbeat_message(subscriber.position), "text")
            continue
        token = realtime.token(subscriber.notebook_id)
        await socket.send_data(protocol.event_message(event, token), "text")
        REALTIME_EVENTS.inc()


async def _until_disconnect(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) what the client sends, until it goes."""
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _close(socket: WebSocket[Any, Any, Any], code: int, reason: str) -> None:
    """Send the close frame, waiting at most ``CLOSE_TIMEOUT``.

    uvicorn sends nothing while the connection's write buffer is full: for a
    client that stopped reading (the 4429 case) the close frame may never go.
    Returning then ends the handler, its task and its subscription anyway;
    what is left is uvicorn's transport with its bounded buffer.
    """
    encoded = reason.encode()[:MAX_REASON_BYTES].decode("utf-8", "ignore")
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError, TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await socket.close(code, encoded)
