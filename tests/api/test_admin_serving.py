"""The admin as a server shows it: its full path in the access log, no needless warnings.

A real uvicorn server in this process (the engine's pool is the session's),
with its access log on, as ``cellar serve`` runs it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import warnings
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from tests.api.test_admin_mount import admin_login, create_admin_account

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar import Litestar

    from app.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _serve(app: Litestar) -> AsyncIterator[str]:
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", access_log=True)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # at most 10 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def served(client: Any, settings: Settings) -> AsyncIterator[str]:
    from app.main import create_app

    assert client is not None  # the session's app has started the engine's pool
    async for url in _serve(create_app(settings)):
        yield url


async def test_the_access_log_shows_the_admins_full_path(
    served: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    async with httpx.AsyncClient(base_url=served) as http:
        for path in ("/admin/login", "/admin/api/tables/?x=1", "/admin/", "/admin"):
            await http.get(path)
    logged = [record.getMessage() for record in caplog.records if record.name == "uvicorn.access"]
    for line in ('"GET /admin/login HTTP/1.1" 200', '"GET /admin/api/tables/?x=1 HTTP/1.1" 401'):
        assert any(line in entry for entry in logged), logged
    assert any('"GET /admin/ HTTP/1.1" 303' in entry for entry in logged), logged
    assert any('"GET /admin HTTP/1.1" 308' in entry for entry in logged), logged


async def test_a_plain_http_admin_login_does_not_warn(client: Any, settings: Settings) -> None:
    """ADMIN_SECURE_COOKIES=false is the operator's choice: no warning on every login."""
    from app.main import create_app

    assert not settings.admin_secure_cookies
    username = await create_admin_account()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        app = create_app(settings)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            response = await admin_login(http, username)
    assert response.status_code == 200, response.text
    assert "secure" not in response.headers["set-cookie"].lower()  # what the setting says
    assert not [w for w in caught if "production" in str(w.message)], [
        str(w.message) for w in caught
    ]
