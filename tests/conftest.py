"""Test harness: a fresh PostgreSQL database per session, built by Piccolo's migrations.

The server is chosen in order: ``TEST_DATABASE_URL``; a testcontainers
PostgreSQL when a Docker engine answers; else the embedded ``pgserver``.  A
new database is created on it, its URL is put in the environment *before*
anything imports ``piccolo_conf`` (the engine reads it once), Piccolo's own
migration runner builds the schema, and the database is dropped at the end.
Tests stay isolated through fresh users, not mocks.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from app.settings import Settings
    from tests.replicas import Pair

# The external identity provider of the test session: its tokens are signed
# with this key, and the app trusts its public half (AUTH_PUBLIC_KEY).
EXTERNAL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EXTERNAL_ISSUER = "https://idp.test.invalid/"
EXTERNAL_AUDIENCE = "cellar-tests"

TEST_ENV = {
    # The daily jobs would fire in the middle of a long session and purge what a test
    # aged on purpose; tests run them by hand (tests/api/test_trash.py).
    "DAILY_JOBS": "false",
    "APP_SECRET_KEY": secrets.token_urlsafe(48),
    "ENCRYPTION_KEY": Fernet.generate_key().decode(),
    # Generous for the shared in-process client; the limiter itself is tested
    # on a real server process with a small limit (tests/e2e/test_server.py).
    "AUTH_TOKEN_RATE_LIMIT_PER_MINUTE": "100000",
    "AUTH_PUBLIC_KEY": EXTERNAL_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode(),
    "AUTH_ISSUER": EXTERNAL_ISSUER,
    "AUTH_AUDIENCE": EXTERNAL_AUDIENCE,
}


def with_database(url: str, database: str) -> str:
    """The same server URL (TCP or unix socket) pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
    except Exception:
        return False
    return True


def _server_url(stack: ExitStack) -> tuple[str, str]:
    """(maintenance URL of a running server, how it was found)."""
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        return url, "TEST_DATABASE_URL"
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = stack.enter_context(PostgresContainer("postgres:16", driver=None))
        return container.get_connection_url(), "testcontainers"
    import pgserver

    data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="cellar-test-pg-"))
    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    stack.callback(server.cleanup)
    return server.get_uri(), "embedded pgserver"


async def _create_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--behind-pgbouncer",
        action="store_true",
        default=False,
        help="send the session's database traffic (migrations, app, tests) through a "
        "PgBouncer in transaction pooling mode, with DATABASE_POOLER=pgbouncer "
        "(Debian's pgbouncer; tests/e2e/test_pgbouncer.py runs the API suite so)",
    )
    parser.addoption(
        "--with-replica",
        action="store_true",
        default=False,
        help="run the session on a primary and a hot standby made for it (initdb, "
        "pg_basebackup -R; Debian's PostgreSQL), the app reading from the standby "
        "(DATABASE_REPLICA_URLS) and the test client sending back every consistency "
        "token as a frontend does (tests/e2e/test_replicas.py runs the read routes so)",
    )


# The primary and standby of a --with-replica session (tests/replicas.py), if any.
REPLICA_PAIR: list[Pair] = []


def _with_replica(stack: ExitStack) -> str:
    """Start a primary and its standby; the primary's maintenance URL."""
    from tests.replicas import running_pair, why_unavailable

    reason = why_unavailable()
    if reason is not None:
        pytest.exit(f"--with-replica: {reason}", returncode=pytest.ExitCode.USAGE_ERROR)
    pair = stack.enter_context(running_pair())
    REPLICA_PAIR.append(pair)
    stack.callback(REPLICA_PAIR.clear)
    return pair.primary_url


def _behind_pgbouncer(stack: ExitStack, server_url: str, name: str) -> str:
    """Start PgBouncer in front of the server; its URL of database ``name``."""
    from tests.pgbouncer import running_pgbouncer, why_unavailable

    reason = why_unavailable()
    if reason is not None:
        pytest.exit(f"--behind-pgbouncer: {reason}", returncode=pytest.ExitCode.USAGE_ERROR)
    bouncer = stack.enter_context(running_pgbouncer(server_url))

    def went_through() -> None:
        # Checked before PgBouncer stops: the session's clients logged in through it.
        assert f"login attempt: db={name} " in bouncer.log(), bouncer.log()[-2000:]

    stack.callback(went_through)
    os.environ["DATABASE_POOLER"] = "pgbouncer"
    return bouncer.url(name)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated, empty database for this session; dropped afterwards."""
    with ExitStack() as stack:
        if request.config.getoption("--with-replica"):
            server_url, source = _with_replica(stack), "a primary and a hot standby"
        else:
            server_url, source = _server_url(stack)
        name = f"cellar_test_{secrets.token_hex(4)}"
        asyncio.run(_create_database(server_url, name))
        stack.callback(lambda: asyncio.run(_drop_database(server_url, name)))
        url = with_database(server_url, name)
        if request.config.getoption("--behind-pgbouncer"):
            # LISTEN cannot go through transaction pooling: realtime's one listening
            # connection goes to PostgreSQL itself, as docs/realtime.md says to deploy it.
            os.environ["DATABASE_LISTEN_URL"] = url
            stack.callback(os.environ.pop, "DATABASE_LISTEN_URL", None)
            url = _behind_pgbouncer(stack, server_url, name)
            source += ", behind PgBouncer (transaction pooling)"
        os.environ.update(TEST_ENV, DATABASE_URL=url)
        if REPLICA_PAIR:
            os.environ["DATABASE_REPLICA_URLS"] = REPLICA_PAIR[0].url(
                REPLICA_PAIR[0].standby_port, name
            )
            stack.callback(os.environ.pop, "DATABASE_REPLICA_URLS", None)
        print(f"\ntest database {name} on {source}")

        from piccolo.apps.migrations.commands.forwards import run_forwards

        result = asyncio.run(run_forwards(app_name="all"))
        assert result.success, result.message
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    from app.settings import Settings

    return Settings.from_env(os.environ)


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One app for the session, served in the tests' own event loop.

    Litestar's ``AsyncTestClient`` runs the app in a portal thread with its
    own loop, so the engine's pool would live in another loop than the tests
    that query through Piccolo; ASGI transport plus the app's own lifespan
    keeps everything in one loop.  One app only: the engine's pool is per
    process (see app.database).
    """
    from app.main import create_app

    app = create_app(settings)
    started, stopping = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        # Entered and exited in one task: the lifespan holds anyio cancel scopes.
        async with app.lifespan():
            started.set()
            await stopping.wait()

    lifespan = asyncio.create_task(run_lifespan())
    await asyncio.wait(
        [lifespan, asyncio.create_task(started.wait())], return_when="FIRST_COMPLETED"
    )
    if lifespan.done():
        lifespan.result()  # start-up failed: raise its error here
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks=consistency_hooks()
    ) as http:
        yield http
        if REPLICA_PAIR:
            _assert_replica_served(settings)
    stopping.set()
    await lifespan


def consistency_hooks() -> dict[str, list[Any]]:
    """What a frontend does (docs/scaling.md): send back the last consistency token received.

    A request that names its own ``Cellar-Consistency`` keeps it.  Without
    replicas no answer carries one and nothing is sent.
    """
    last: list[str] = []

    async def send_token(request: httpx.Request) -> None:
        if last and "cellar-consistency" not in request.headers:
            request.headers["Cellar-Consistency"] = last[-1]

    async def keep_token(response: httpx.Response) -> None:
        token = response.headers.get("cellar-consistency")
        if token is not None:
            last[:] = [token]

    return {"request": [send_token], "response": [keep_token]}


def _assert_replica_served(settings: Settings) -> None:
    """A --with-replica session that never read from the standby proved nothing."""
    from prometheus_client import REGISTRY

    from app.replicas.replicaset import replica_name

    name = replica_name(settings.database_replica_urls[0])
    served = REGISTRY.get_sample_value("cellar_db_reads_total", {"server": name}) or 0
    assert served > 0, f"the standby {name} served no read"
    print(f"\nreads served by the standby {name}: {served:.0f}")
