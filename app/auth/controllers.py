"""``/auth/register`` and ``/auth/token`` (SPEC §2)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Router, post
from litestar.di import NamedDependency
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import JSONBody

from app.auth.schemas import AccessToken, Credentials, Registered, Registration
from app.auth.services import AuthService
from app.auth.tokens import TokenService
from app.system.openapi import ErrorBody, RateLimitedOperation, error_response, error_responses

TOKEN_PATH = "/auth/token"


async def _is_token_request(request: Request[Any, Any, Any]) -> bool:
    # A coroutine: Litestar runs a plain function here in a worker thread, on
    # every request it sees (measured: docs/decisions.md, "Performance").
    return request.method == "POST" and request.url.path == TOKEN_PATH


def token_rate_limit(per_minute: int) -> RateLimitConfig:
    """Throttle password guessing on ``POST /auth/token`` only, per client address.

    The window lives in this process's memory store: each instance counts on
    its own (documented in docs/decisions.md).
    """
    return RateLimitConfig(
        rate_limit=("minute", per_minute),
        check_throttle_handler=_is_token_request,
        store="auth_token_rate_limit",
    )


def auth_router(per_minute: int) -> Router:
    """``/auth`` with its rate limit: only these routes pay the limiter's per-request work.

    As an app-wide middleware it built a ``Request`` and asked ``_is_token_request``
    on every request of every route (about 1 % of a cached notebook read).
    """
    return Router(
        path="/",
        route_handlers=[AuthController],
        middleware=[token_rate_limit(per_minute).middleware],
    )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]
    opt = {"exclude_from_auth": True}

    @post(
        "/register",
        operation_id="register",
        summary="Create an account",
        responses=error_responses(
            400,
            413,
            special={
                409: error_response(
                    409,
                    "The email is already registered.",
                    ErrorBody,
                    detail="email: already registered",
                )
            },
        ),
    )
    async def register(
        self, data: JSONBody[Registration], auth: NamedDependency[AuthService]
    ) -> Registered:
        """Create a password account; then get a token from `POST /auth/token`."""
        user_id, email = await auth.register(data.email, data.password)
        return Registered(id=user_id, email=email)

    @post(
        "/token",
        operation_id="issueToken",
        status_code=200,
        summary="Get a bearer token",
        responses=error_responses(
            400,
            413,
            429,
            special={
                401: error_response(
                    401,
                    "Unknown email or wrong password (one answer for both).",
                    detail="incorrect email or password",
                )
            },
        ),
        operation_class=RateLimitedOperation,
    )
    async def token(
        self,
        data: JSONBody[Credentials],
        auth: NamedDependency[AuthService],
        tokens: NamedDependency[TokenService],
    ) -> AccessToken:
        """Exchange email and password for a bearer token.

        Limited per client address (`AUTH_TOKEN_RATE_LIMIT_PER_MINUTE`, default 20 a minute).
        """
        user_id = await auth.authenticate(data.email, data.password)
        access_token, expires_in = tokens.issue(str(user_id))
        return AccessToken(access_token=access_token, expires_in=expires_in)
