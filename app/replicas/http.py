"""The consistency token on the wire: one middleware, both directions.

In: a request's ``Cellar-Consistency`` header is kept in a context variable
for the request (``routing.REQUESTED``), where ``routing.read`` finds it; it
is parsed only when a read needs it, so a malformed one is the read's 400.

Out: the answer of every successful mutation (a method other than GET, HEAD
and OPTIONS, answered 2xx) carries the primary's WAL insert position, read
when the handler has returned, so after the mutation's transaction committed
(a service commits before it returns).  This is the one place the token is
set: a new mutation route carries it without doing anything.  Reading it
costs one short statement on the primary per mutation; when that fails the
answer goes out without the header (the mutation did happen) and the client
keeps its previous token.

Installed only when replicas are configured: without them every read is the
primary's and the token would mean nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from app.replicas import tokens
from app.replicas.routing import REPLICA_ERRORS, REQUESTED

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from app.replicas.replicaset import ReplicaSet

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ConsistencyMiddleware(ASGIMiddleware):
    """Keep the request's token for ``routing.read``; give mutations the primary's position."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, replicas: ReplicaSet) -> None:
        self.replicas = replicas

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        requested = None
        for name, value in scope["headers"]:
            if name == tokens.HEADER_KEY:
                requested = value
                break
        reset = REQUESTED.set(requested)
        try:
            if scope.get("method") in SAFE_METHODS:
                await next_app(scope, receive, send)
            else:
                await next_app(scope, receive, self._with_token(send))
        finally:
            REQUESTED.reset(reset)

    def _with_token(self, send: Send) -> Send:
        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                try:
                    position = await self.replicas.primary_position()
                except REPLICA_ERRORS:
                    logger.warning("no consistency token: the primary's position is unknown")
                    position = None
                if position is not None:
                    headers = list(message.get("headers", ()))
                    headers.append((tokens.HEADER_KEY, tokens.format_lsn(position).encode()))
                    message["headers"] = headers
            await send(message)

        return send_with_token
