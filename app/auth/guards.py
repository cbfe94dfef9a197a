"""Bearer-token authentication for every route that is not explicitly open.

A middleware rather than per-route guards, so a new route is protected by
default; open routes opt out with ``opt={"exclude_from_auth": True}`` or are
listed in ``OPEN_PATHS`` (the mounted admin has its own session login).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

from app.auth.tokens import TokenError
from app.system.outage import DATABASE

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection

    from app.auth.services import AuthService
    from app.auth.tokens import TokenService

OPEN_PATHS = ["^/health$", "^/schema", "^/metrics$", "^/admin"]


class AuthUser(msgspec.Struct, frozen=True):
    """What a handler knows about its caller: the users.id, nothing cached beyond it."""

    id: UUID


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: Any, *, tokens: TokenService, auth: AuthService, **kwargs: Any) -> None:
        super().__init__(app, exclude=OPEN_PATHS, **kwargs)
        self.tokens = tokens
        self.auth = auth

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("missing bearer token")
        try:
            identity = await self.tokens.verify_async(token.strip())
        except TokenError as exc:
            raise NotAuthorizedException(str(exc)) from None
        # Database trouble here propagates to app.errors (503), as in any handler.
        user_id = await self.auth.resolve(identity)
        DATABASE.reachable()  # the lookup answered: an outage, if any, is over
        return AuthenticationResult(user=AuthUser(id=user_id), auth=identity)


def bearer_auth(tokens: TokenService, auth: AuthService) -> DefineMiddleware:
    return DefineMiddleware(BearerAuthMiddleware, tokens=tokens, auth=auth)
