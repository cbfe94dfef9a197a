"""The mounted admin: Piccolo admin behind a server-side login redirect.

Piccolo admin serves its single-page app at ``/admin/`` to anyone and lets
the page find out from a 401 of its API that it must show its login.  Here
a visitor without a live admin session is sent to ``/admin/login`` (303)
before any page loads, and ``/admin/login`` sends a logged-in admin back to
``/admin/`` (the page's own ``#/…`` route survives both redirects).
``/admin/login`` serves the same page: without a trailing slash its relative
asset and API URLs still resolve under ``/admin/``.  Locations are relative,
so the admin also works behind a path prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from piccolo.apps.user.tables import BaseUser
from piccolo_api.session_auth.middleware import SessionsAuthBackend
from piccolo_api.session_auth.tables import SessionsBase
from starlette.authentication import AuthenticationError
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

# /admin/login: where a visitor without an admin session is sent.
LOGIN = "login"


class AdminEntry:
    """The admin's ASGI app as mounted: the login redirect, then Piccolo admin.

    Mount it without copying the scope: the router has already cut the
    mount's prefix off ``scope["path"]``, and this puts the full path back
    for the server's access log once the admin has its own copy.
    """

    def __init__(self, admin: ASGIApp) -> None:
        self.admin = admin
        self.sessions = SessionsAuthBackend(
            auth_table=BaseUser, session_table=SessionsBase, admin_only=True, active_only=True
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inner: Scope = {**scope}
        raw_path: bytes = scope.get("raw_path") or b""
        if raw_path:
            # As the server decoded it (uvicorn: unquote of the raw path, root path included).
            scope["path"] = unquote(raw_path.decode("latin-1"))
        await self._serve(inner, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.admin(scope, receive, send)
            return
        # Litestar hands a mounted app the rest of the path, always ending in "/";
        # the raw path tells "/admin" from "/admin/" and "/admin/login" from ".../login/".
        path: str = scope["path"]
        raw = scope.get("raw_path", b"").decode("latin-1") or path
        if path == "/":
            if not raw.endswith("/"):
                await _redirect(scope, send, f"{raw.rsplit('/', 1)[-1]}/", status=308)
            elif not await self._has_session(scope):
                await _redirect(scope, send, LOGIN)
            else:
                await self.admin(scope, receive, send)
        elif path == f"/{LOGIN}/":
            if raw.endswith("/"):
                await _redirect(scope, send, f"../{LOGIN}", status=308)
            elif await self._has_session(scope):
                await _redirect(scope, send, "./")
            else:
                await self.admin({**scope, "path": "/", "raw_path": b"/"}, receive, send)
        else:
            await self.admin(scope, receive, send)

    async def _has_session(self, scope: Scope) -> bool:
        """A live session of an active admin, checked exactly as the admin's API checks it."""
        try:
            return await self.sessions.authenticate(HTTPConnection(scope)) is not None
        except AuthenticationError:
            return False


async def _redirect(scope: Scope, send: Send, location: str, status: int = 303) -> None:
    query: bytes = scope.get("query_string", b"")
    target = f"{location}?{query.decode('latin-1')}" if query else location
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"location", target.encode("latin-1")),
                (b"content-length", b"0"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
