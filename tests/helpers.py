"""Plain async helpers for API tests: fresh users keep tests independent."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import jwt

from tests.conftest import EXTERNAL_AUDIENCE, EXTERNAL_ISSUER, EXTERNAL_KEY

if TYPE_CHECKING:
    from httpx import AsyncClient

PASSWORD = "correct horse battery"


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
