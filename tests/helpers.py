"""Plain async helpers for API tests: fresh users keep tests independent."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import jwt

from tests.conftest import EXTERNAL_AUDIENCE, EXTERNAL_ISSUER, EXTERNAL_KEY

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from httpx import AsyncClient

T = TypeVar("T")

PASSWORD = "correct horse battery"


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``await awaitable``, or raise TimeoutError after ``seconds``.

    Not ``asyncio.wait_for``: on Python 3.11 it swallows its own cancellation
    when the awaitable completes in that moment, so a wait_for inside another
    timeout (a heartbeat arriving as the outer one fires) never returned.
    """
    async with asyncio.timeout(seconds):
        return await awaitable


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def register_user(
    client: AsyncClient, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post(
        "/auth/register", json={"email": email or unique_email(), "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_user_headers(client: AsyncClient) -> dict[str, str]:
    """Register a fresh user and return headers that authenticate as them."""
    user = await register_user(client)
    return auth_headers(await login(client, user["email"]))


def external_token(**overrides: Any) -> str:
    """A token of the session's external identity provider (RS256), for a new subject."""
    now = int(time.time())
    claims = {
        "sub": f"user_{uuid.uuid4().hex}",
        "iss": EXTERNAL_ISSUER,
        "aud": EXTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + 600,
        **overrides,
    }
    return jwt.encode(claims, EXTERNAL_KEY, algorithm="RS256")
