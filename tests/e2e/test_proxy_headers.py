"""Client addresses and the ``server`` header on a real ``cellar serve`` process (issue 17).

uvicorn believed ``X-Forwarded-For`` from loopback by default, so any local
client could start a fresh token rate-limit window by sending a new
address in that header.  ``FORWARDED_ALLOW_IPS`` (default: no proxy) now
decides whom to believe: without it the header is ignored; with the proxy's
address in it, each forwarded client gets its own window, as it should
behind a reverse proxy.  No answer names the server software.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.conftest import cellar_server
from tests.helpers import PASSWORD

pytestmark = pytest.mark.e2e

TOKEN_LIMIT = 2
FORGED = ("203.0.113.7", "198.51.100.9", "192.0.2.1")


def limited_env(service_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {**service_env, "AUTH_TOKEN_RATE_LIMIT_PER_MINUTE": str(TOKEN_LIMIT), **extra}
    if "FORWARDED_ALLOW_IPS" not in extra:
        env.pop("FORWARDED_ALLOW_IPS", None)
    return env


def registered(http: httpx.Client) -> dict[str, str]:
    credentials = {"email": f"proxy-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    response = http.post("/auth/register", json=credentials)
    assert response.status_code == 201, response.text
    return credentials


def token(http: httpx.Client, credentials: dict[str, str], forwarded_for: str | None) -> int:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return http.post("/auth/token", json=credentials, headers=headers).status_code


def test_a_forged_forwarded_for_does_not_reset_the_token_limiter(
    service_env: dict[str, str],
) -> None:
    with (
        cellar_server(limited_env(service_env)) as server,
        httpx.Client(base_url=server.url, timeout=10.0) as http,
    ):
        health = http.get("/health")
        assert health.status_code == 200
        assert "server" not in health.headers, health.headers
        assert health.headers.get("x-content-type-options") == "nosniff"

        credentials = registered(http)
        assert [token(http, credentials, None) for _ in range(TOKEN_LIMIT)] == [200] * TOKEN_LIMIT
        forged = [token(http, credentials, address) for address in FORGED]
        assert forged == [429] * len(FORGED), server.tail()
        spoofed = http.post(
            "/auth/token",
            json=credentials,
            headers={"Forwarded": "for=203.0.113.8", "X-Real-IP": "203.0.113.9"},
        )
        assert spoofed.status_code == 429
        assert "server" not in spoofed.headers


def test_a_trusted_proxy_gives_each_forwarded_client_its_own_window(
    service_env: dict[str, str],
) -> None:
    env = limited_env(service_env, FORWARDED_ALLOW_IPS="127.0.0.1")
    with (
        cellar_server(env) as server,
        httpx.Client(base_url=server.url, timeout=10.0) as http,
    ):
        credentials = registered(http)
        first, second = FORGED[0], FORGED[1]
        assert [token(http, credentials, first) for _ in range(TOKEN_LIMIT)] == [200] * TOKEN_LIMIT
        assert token(http, credentials, first) == 429
        assert token(http, credentials, second) == 200, server.tail()
