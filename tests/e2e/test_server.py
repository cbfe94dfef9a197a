"""A real ``cellar serve`` process on the session database (SPEC §2, §10).

The token endpoint's limiter keeps its window in process memory, so it is
only meaningful against a real server: the shared in-process client of the
API tests runs with a huge limit.  One server per module, with a limit of 3
token requests a minute; only ``test_token_requests_are_rate_limited`` asks
for tokens, so its window starts fresh.
"""

from __future__ import annotations

import os
import signal
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.conftest import cellar_server, running_server

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e

TOKEN_LIMIT = 3
PASSWORD = "correct horse battery"


def unique_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    env = {**os.environ, "AUTH_TOKEN_RATE_LIMIT_PER_MINUTE": str(TOKEN_LIMIT)}
    assert env["DATABASE_URL"] == database_url
    with running_server(env) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        yield client


def register(http: httpx.Client) -> str:
    email = unique_email()
    response = http.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return email


def test_token_requests_are_rate_limited(http: httpx.Client) -> None:
    email = register(http)
    attempts = [
        {"email": email, "password": PASSWORD},
        {"email": email, "password": "wrong password!"},
        {"email": email, "password": PASSWORD},
    ]
    answers = [http.post("/auth/token", json=body) for body in attempts]
    assert [answer.status_code for answer in answers] == [200, 401, 200], [
        answer.text for answer in answers
    ]
    token = answers[0].json()["access_token"]
    # Retry-After belongs to refusals only, not to the last request the window allowed.
    assert all("Retry-After" not in answer.headers for answer in answers)

    limited = http.post("/auth/token", json={"email": email, "password": PASSWORD})
    assert limited.status_code == 429, limited.text
    retry_after = limited.headers.get("Retry-After")
    assert retry_after is not None, dict(limited.headers)
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60
    assert "access_token" not in limited.text

    # Still limited, for a correct password and for an unknown account alike.
    again = http.post("/auth/token", json={"email": email, "password": PASSWORD})
    assert again.status_code == 429
    unknown = http.post("/auth/token", json={"email": unique_email(), "password": PASSWORD})
    assert unknown.status_code == 429

    # Only POST /auth/token is throttled.
    for _ in range(TOKEN_LIMIT + 2):
        assert http.get("/health").status_code == 200
    for _ in range(TOKEN_LIMIT + 1):
        register(http)
    me = http.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email


def test_openapi_schema_is_open(http: httpx.Client) -> None:
    response = http.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/health", "/auth/register", "/auth/token", "/me"} <= set(schema["paths"])


def test_me_without_a_token_is_401(http: httpx.Client) -> None:
    response = http.get("/me")
    assert response.status_code == 401, response.text
    garbage = http.get("/me", headers={"Authorization": "Bearer not-a-token"})
    assert garbage.status_code == 401, garbage.text


def test_health_on_the_real_server(http: httpx.Client) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "database": "connected"}


def test_several_workers_share_the_database(service_env: dict[str, str]) -> None:
    """``--workers 2``: uvicorn's worker processes build the app from the same environment."""
    with (
        cellar_server(service_env, workers=2) as server,
        httpx.Client(base_url=server.url, timeout=10.0) as http,
    ):
        email = register(http)
        for _ in range(6):  # a new connection each time, whichever worker accepts it
            response = http.post(
                "/auth/token",
                json={"email": email, "password": PASSWORD},
                headers={"Connection": "close"},
            )
            assert response.status_code == 200, response.text
    assert server.stopped_by == signal.SIGINT, server.describe("did not exit on SIGINT")
    assert server.returncode == 0, server.describe(f"exit code {server.returncode} on SIGINT")
