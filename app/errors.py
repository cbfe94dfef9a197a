"""Domain errors and the one exception-handler map that turns them into SPEC bodies.

Services raise these; controllers never catch them.  Every error body has
``status_code`` and ``detail``; a revision conflict adds ``revision`` and a
bad input adds ``field``, so a client can react without parsing prose.  A
database that cannot be reached is a 503 with ``Retry-After`` on every route
(``app.system.outage`` says what counts and logs it once per outage).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from litestar import MediaType, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.responses import create_exception_response
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from app.system.outage import (
    DATABASE,
    HANDLED_EXCEPTIONS,
    QUIET_EXCEPTIONS,
    RETRY_AFTER_SECONDS,
    is_unreachable,
)

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import ExceptionHandlersMap


logger = logging.getLogger(__name__)

_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


class CellarError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"status_code": self.status_code, "detail": self.detail}


class NotFound(CellarError):
    """Missing, or not the caller's: both answer the same 404."""

    status_code = 404


class InvalidInput(CellarError):
    status_code = 400

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field

    def body(self) -> dict[str, Any]:
        return {**super().body(), "field": self.field}


class PayloadTooLarge(InvalidInput):
    status_code = 413


class UnsupportedMediaType(InvalidInput):
    """A body in a format the route does not take (``field`` is the header)."""

    status_code = 415


class Duplicate(CellarError):
    status_code = 409


class Conflict(CellarError):
    """The request cannot be done in the resource's present state (the detail says why)."""

    status_code = 409


class RevisionConflict(CellarError):
    status_code = 409

    def __init__(
        self, revision: int, detail: str = "revision conflict", conflicts: list[Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.revision = revision
        # A stale code edit that could not be merged: the events that touched the cell.
        self.conflicts = conflicts

    def body(self) -> dict[str, Any]:
        body = {**super().body(), "revision": self.revision}
        if self.conflicts is not None:
            body["conflicts"] = self.conflicts
        return body


class PreconditionFailed(RevisionConflict):
    """An ``If-Match`` header named another revision (HTTP says 412, not 409)."""

    status_code = 412


class Gone(CellarError):
    """What was asked for was pruned (the history before ``oldest_seq``, SPEC §11)."""

    status_code = 410

    def __init__(self, oldest_seq: int, detail: str) -> None:
        super().__init__(detail)
        self.oldest_seq = oldest_seq

    def body(self) -> dict[str, Any]:
        return {**super().body(), "oldest_seq": self.oldest_seq}


class Unauthorized(CellarError):
    status_code = 401


def _cellar_error(_: Request[Any, Any, Any], exc: CellarError) -> Response[Any]:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return Response(
        content=exc.body(),
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Name the offending field first in ``detail`` (Litestar keeps it in ``extra``)."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    message = first.get("message") or exc.detail
    key = first.get("key")
    missing = _MISSING_FIELD.search(str(message))
    if missing is not None:  # Litestar reports a missing body field under the key "data"
        key = missing.group(1)
    detail = f"{key}: {message}" if key else str(message)
    body: dict[str, Any] = {"status_code": HTTP_400_BAD_REQUEST, "detail": detail}
    if key:
        body["field"] = key
    if extra:
        body["extra"] = extra
    return Response(content=body, status_code=HTTP_400_BAD_REQUEST, media_type=MediaType.JSON)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        return _cellar_error(request, _body_too_large(request))
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    if exc.status_code == 429 and "RateLimit-Reset" in headers:
        # Litestar's limiter says when the window resets; HTTP clients read Retry-After.
        headers.setdefault("Retry-After", str(max(1, int(headers["RateLimit-Reset"]))))
    return Response(
        content={"status_code": exc.status_code, "detail": exc.detail},
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=headers or None,
    )


def _body_too_large(request: Request[Any, Any, Any]) -> PayloadTooLarge:
    """Litestar's own 413 says "Request Entity Too Large"; this one names the limit."""
    limit = request.route_handler.resolve_request_max_body_size()
    return PayloadTooLarge(
        "body", f"larger than the {limit} bytes a request may carry (MAX_REQUEST_BODY_BYTES)"
    )


def _too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """msgspec gives up on absurdly nested JSON with RecursionError: that is bad input."""
    return Response(
        content={"status_code": HTTP_400_BAD_REQUEST, "detail": "body is nested too deeply"},
        status_code=HTTP_400_BAD_REQUEST,
        media_type=MediaType.JSON,
    )


def _database_unreachable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """503 + Retry-After while the database cannot be reached; anything else stays a 500."""
    if not is_unreachable(exc):
        if type(exc) in QUIET_EXCEPTIONS:  # Litestar was told not to log it: do it here
            logger.error("Uncaught exception (path=%r)", request.url.path, exc_info=exc)
        return create_exception_response(request, exc)
    DATABASE.failed(exc)
    return Response(
        content={
            "status_code": HTTP_503_SERVICE_UNAVAILABLE,
            "detail": "the database is unavailable; try again shortly",
        },
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        media_type=MediaType.JSON,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    CellarError: _cellar_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    RecursionError: _too_deep,
    **dict.fromkeys(HANDLED_EXCEPTIONS, _database_unreachable),
}
