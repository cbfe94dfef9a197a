"""One wrapper around every HTTP request: request id, access line, request metrics.

It wraps Litestar's whole ASGI handler (``Observability.instrument``), outside
routing, CORS and the exception handlers, so it also sees answers no route
gave (404, 405) and the mounted admin, and it reads the path before routing
rewrites it for the mount.  After the answer it knows the route template
Litestar matched (``scope["path_template"]``), the caller (``scope["user"]``,
set by the auth middleware) and the path parameters.

Request ids: a client's ``X-Request-ID`` is kept when it is 1-128 safe
characters (letters, digits, ``._~:/+=@-``), else a new one is generated; the
answer always carries it, and every log line written while the request runs
has it (``CURRENT_REQUEST``).

Logging policy: one access line per request at INFO (none when ``ACCESS_LOG``
is off; held back while other requests are in flight, see ``AccessLog``); a
5xx is one ERROR line with the exception's traceback, whatever ``ACCESS_LOG``
says.  A 4xx is the client's business: no traceback, no
ERROR, only the access line naming the exception class in ``error``.  So is
the 503 of an unreachable database: ``app.system.outage`` logs the outage once.
"""

from __future__ import annotations

import logging
import os
import re
from time import perf_counter
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType

from app.observability.logs import CURRENT_REQUEST, AccessLog, RequestContext
from app.observability.metrics import METHODS, UNMATCHED_ROUTE
from app.system.outage import is_unreachable

if TYPE_CHECKING:
    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

    from app.observability.metrics import LocalMetrics, SharedMetrics

REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 128
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._~:/+=@-]+")


def request_id_from(headers: Any) -> str:
    """The client's ``X-Request-ID`` if short and safe, else a fresh random one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if len(value) <= MAX_REQUEST_ID and _SAFE_REQUEST_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return os.urandom(16).hex()


async def remember_exception(exc: Exception, _: Scope) -> None:
    """Litestar's after-exception hook: keep the exception for the request's log line."""
    context = CURRENT_REQUEST.get()
    if context is not None:
        context.exception = exc


class RequestObserver:
    __slots__ = ("access_log", "app", "in_flight", "log", "metrics")

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: LocalMetrics | SharedMetrics | None,
        log: AccessLog,
        access_log: bool,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log
        self.access_log = access_log
        self.in_flight = 0  # HTTP requests begun and not finished (held access lines wait)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        path = scope["path"]
        context = RequestContext(request_id_from(scope["headers"]))
        token = CURRENT_REQUEST.set(context)
        header = (REQUEST_ID_HEADER, context.request_id.encode("ascii"))
        status = 500
        self.in_flight += 1

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as exc:
            # Only after the answer started (Litestar turns anything earlier into a 500).
            context.exception = exc
            status = 500
            raise
        finally:
            self.in_flight -= 1
            self._finish(scope, path, status, context, perf_counter() - started)
            CURRENT_REQUEST.reset(token)

    def _finish(
        self, scope: HTTPScope, path: str, status: int, context: RequestContext, seconds: float
    ) -> None:
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        route = scope.get("path_template") or _mount_path(scope) or UNMATCHED_ROUTE
        if self.metrics is not None:
            self.metrics.observe(method, route, status, seconds)
        exc = context.exception
        # An unreachable database is logged once per outage (app.system.outage), not
        # with a traceback per request: its 503s get only the access line.
        failed = status >= 500 and not (exc is not None and is_unreachable(exc))
        level = logging.ERROR if failed else logging.INFO
        if not (failed or self.access_log) or not self.log.enabled(level):
            return
        fields: dict[str, Any] = {
            "request_id": context.request_id,
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        user = scope.get("user")
        if user is not None and (user_id := getattr(user, "id", None)) is not None:
            fields["user_id"] = user_id  # a UUID: the JSON encoder writes it as text
        notebook_id = scope.get("path_params", {}).get("notebook_id")
        if notebook_id is not None:
            fields["notebook_id"] = notebook_id
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        if exc is not None:
            fields["error"] = type(exc).__name__
        self.log.write(
            level,
            f"{method} {path} {status}",
            fields,
            exc if failed else None,
            more_coming=self.in_flight > 0,
        )


def _mount_path(scope: HTTPScope) -> str | None:
    """A mounted app's path (``/admin``): Litestar 2 leaves ``path_template`` empty for mounts."""
    handler = scope.get("route_handler")
    return min(handler.paths) if handler is not None and handler.paths else None
