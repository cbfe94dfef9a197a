"""SPEC §7 over HTTP, in process: the Piccolo admin mounted at /admin/.

Login redirect, Piccolo's session login with CSRF, the separation of the admin
session and the REST bearer tokens, one admin per app (built at start-up),
the engine and pool it shares with the API, what its notebooks and users
tables show, and what an admin may and may not change.

The admin requests go to a second app of this process (``admin_app``): its
own admin and login rate limiter, the same engine and pool as the session's
app, which serves the REST calls (``client``).  Admin clients have their own
cookie jars.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx
import msgspec
import pytest
from piccolo.apps.user.tables import BaseUser
from piccolo_api.session_auth.tables import SessionsBase

from app import admin as admin_module
from app.admin import LOGIN_LIMIT, CellRunInAdmin, NotebookInAdmin, UserInAdmin
from app.database import QueryCounter, connection, get_engine
from app.notebooks.tables import Notebook
from app.settings import Settings, SettingsError
from app.users.tables import User
from tests.helpers import auth_headers, login, register_user, unique_email

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar import Litestar

# Piccolo warns on every login that is not in "production" mode (secure cookies);
# these tests run over plain HTTP on purpose (ADMIN_SECURE_COOKIES is off).
pytestmark = pytest.mark.filterwarnings("ignore:If running sessions in production")

ADMIN_PASSWORD = "admin password 1"
CONNECTION = "postgresql://alice:Hunter2-secret@db.example:5432/sales"


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
async def admin_app(client: httpx.AsyncClient, settings: Settings) -> Litestar:
    """Another app of this process; ``client`` has started the engine's pool."""
    from app.main import create_app

    assert client is not None
    return create_app(settings)


def http_client(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def create_admin_account(*, admin: bool = True) -> str:
    username = f"admin-{uuid.uuid4().hex[:10]}"
    await BaseUser.create_user(
        username=username,
        password=ADMIN_PASSWORD,
        email=f"{username}@example.com",
        active=True,
        admin=admin,
        superuser=admin,
    )
    return username


async def admin_login(
    http: httpx.AsyncClient, username: str, password: str = ADMIN_PASSWORD
) -> httpx.Response:
    """The admin page's own login: fetch the page (CSRF cookie), post with the token header."""
    page = await http.get("/admin/login")
    assert page.status_code == 200, page.text
    token = http.cookies["csrftoken"]
    return await http.post(
        "/admin/public/login/",
        json={"username": username, "password": password},
        headers={"X-CSRFToken": token},
    )


@pytest.fixture(scope="module")
async def admin_http(admin_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in admin (one login for the module: the login limiter counts them)."""
    username = await create_admin_account()
    async with http_client(admin_app) as http:
        response = await admin_login(http, username)
        assert response.status_code == 200, response.text
        yield http


def csrf(http: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRFToken": http.cookies["csrftoken"]}


async def rest_user(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, str]]:
    user = await register_user(client)
    return user, auth_headers(await login(client, user["email"]))


async def rest_notebook(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, connection: str | None = None
) -> str:
    created = await client.post("/notebooks", json={"name": name}, headers=headers)
    assert created.status_code == 201, created.text
    notebook_id: str = created.json()["notebook_id"]
    cell = await client.post(
        f"/notebooks/{notebook_id}/cells",
        json={"type": "python", "code": "x = 10\ny = x + 5"},
        headers=headers,
    )
    assert cell.status_code == 201, cell.text
    if connection is not None:
        stored = await client.put(
            f"/notebooks/{notebook_id}/db", json={"connection_string": connection}, headers=headers
        )
        assert stored.status_code == 200, stored.text
    return notebook_id


async def rest_get(
    client: httpx.AsyncClient, headers: dict[str, str], notebook_id: str
) -> dict[str, Any]:
    response = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def form_of(http: httpx.AsyncClient, table: str, row_id: str) -> dict[str, Any]:
    """What the admin's edit form sends back on save: every schema field, as loaded."""
    schema = (await http.get(f"/admin/api/tables/{table}/schema/")).json()
    row = (await http.get(f"/admin/api/tables/{table}/{row_id}/")).json()
    return {name: row.get(name) for name in schema["properties"]}


async def stored_token(notebook_id: str) -> str | None:
    rows = await Notebook.select(Notebook.db_conn_string).where(Notebook.id == notebook_id)
    token: str | None = rows[0]["db_conn_string"]
    return token


# -- the mount and its login ---------------------------------------------------------------


async def test_admin_without_a_session_redirects_to_the_login(admin_app: Litestar) -> None:
    async with http_client(admin_app) as http:
        root = await http.get("/admin/")
        assert root.status_code == 303
        assert urljoin("http://testserver/admin/", root.headers["location"]) == (
            "http://testserver/admin/login"
        )

        page = await http.get("/admin/login")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<div id="app">' in page.text and "./assets/" in page.text
        assert "csrftoken" in page.cookies  # the login form's CSRF token

        # Its relative URLs resolve under /admin/: the assets and the public API answer there.
        asset = page.text.split('src="./', 1)[1].split('"', 1)[0]
        assert (await http.get(f"/admin/{asset}")).status_code == 200
        meta = await http.get("/admin/public/meta/")
        assert meta.status_code == 200 and meta.json()["site_name"] == "Cellar admin"

        # Without the trailing slash the relative URLs would break: redirected.
        bare = await http.get("/admin")
        assert bare.status_code == 308
        assert urljoin("http://testserver/admin", bare.headers["location"]) == (
            "http://testserver/admin/"
        )
        slashed = await http.get("/admin/login/")
        assert slashed.status_code == 308
        assert urljoin("http://testserver/admin/login/", slashed.headers["location"]) == (
            "http://testserver/admin/login"
        )

        # The data API itself answers 401, not a page.
        for path in ("/admin/api/tables/", "/admin/api/tables/notebooks/", "/admin/api/user/"):
            response = await http.get(path)
            assert response.status_code == 401, (path, response.text)


async def test_login_needs_the_csrf_token_and_a_right_password(admin_app: Litestar) -> None:
    username = await create_admin_account()
    async with http_client(admin_app) as http:
        await http.get("/admin/login")
        no_token = await http.post(
            "/admin/public/login/", json={"username": username, "password": ADMIN_PASSWORD}
        )
        assert no_token.status_code == 403
        assert "CSRF" in no_token.text

        wrong = await admin_login(http, username, "not the password")
        assert wrong.status_code == 401
        assert "id" not in wrong.cookies
        assert (await http.get("/admin/api/tables/")).status_code == 401

        right = await admin_login(http, username)
        assert right.status_code == 200, right.text
        cookie = right.headers["set-cookie"]
        assert cookie.startswith("id=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # ADMIN_SECURE_COOKIES is off in the tests

        assert (await http.get("/admin/")).status_code == 200
        back = await http.get("/admin/login")
        assert back.status_code == 303
        assert urljoin("http://testserver/admin/login", back.headers["location"]) == (
            "http://testserver/admin/"
        )
        tables = await http.get("/admin/api/tables/")
        assert tables.status_code == 200
        assert set(tables.json()) == {"users", "notebooks", "cell_runs", "piccolo_user"}

        # An unsafe request without the CSRF header is refused even with the session.
        response = await http.post("/admin/public/logout/")
        assert response.status_code == 403


async def test_behind_tls_the_session_cookie_is_secure_and_origins_are_checked(
    settings: Settings, client: Any
) -> None:
    """ADMIN_SECURE_COOKIES=true; over HTTPS the CSRF check also wants an allowed Origin."""
    from app.main import create_app

    assert client is not None
    secure = msgspec.structs.replace(
        settings, admin_secure_cookies=True, admin_allowed_hosts=("admin.example",)
    )
    username = await create_admin_account()
    app = create_app(secure)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://admin.example") as http:
        await http.get("/admin/login")
        body = {"username": username, "password": ADMIN_PASSWORD}
        token = {"X-CSRFToken": http.cookies["csrftoken"]}
        foreign = await http.post(
            "/admin/public/login/", json=body, headers={**token, "Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert "id" not in foreign.cookies
        same_site = await http.post(
            "/admin/public/login/", json=body, headers={**token, "Origin": "https://admin.example"}
        )
        assert same_site.status_code == 200, same_site.text
        cookie = same_site.headers["set-cookie"]
        assert cookie.startswith("id=") and "Secure" in cookie


def test_admin_settings_are_read_from_the_environment(settings: Settings) -> None:
    environ = {
        "DATABASE_URL": settings.database_url or "",
        "APP_SECRET_KEY": settings.app_secret_key or "",
        "ENCRYPTION_KEY": settings.encryption_key or "",
    }
    default = Settings.from_env(environ)
    assert default.admin_secure_cookies is False
    assert default.admin_allowed_hosts == ("localhost", "127.0.0.1", "::1")
    configured = Settings.from_env(
        {**environ, "ADMIN_SECURE_COOKIES": "true", "ADMIN_ALLOWED_HOSTS": " a.example, b.example "}
    )
    assert configured.admin_secure_cookies is True
    assert configured.admin_allowed_hosts == ("a.example", "b.example")
    with pytest.raises(SettingsError, match=r"^ADMIN_SECURE_COOKIES: "):
        Settings.from_env({**environ, "ADMIN_SECURE_COOKIES": "maybe"})


async def test_only_admin_accounts_get_in(admin_app: Litestar) -> None:
    username = await create_admin_account(admin=False)
    async with http_client(admin_app) as http:
        await admin_login(http, username)
        assert (await http.get("/admin/api/tables/")).status_code == 401
        assert (await http.get("/admin/")).status_code == 303


async def test_a_rest_token_does_not_open_the_admin(
    client: httpx.AsyncClient, admin_app: Litestar
) -> None:
    _, headers = await rest_user(client)
    assert (await client.get("/me", headers=headers)).status_code == 200
    async with http_client(admin_app) as http:
        for path in ("/admin/api/tables/", "/admin/api/tables/notebooks/", "/admin/api/user/"):
            response = await http.get(path, headers=headers)
            assert response.status_code == 401, (path, response.text)
        page = await http.get("/admin/", headers=headers)
        assert page.status_code == 303 and page.headers["location"] == "login"


async def test_an_admin_session_does_not_open_the_rest_api(
    admin_app: Litestar, admin_http: httpx.AsyncClient
) -> None:
    assert (await admin_http.get("/admin/api/user/")).status_code == 200
    session = admin_http.cookies["id"]
    async with http_client(admin_app) as http:
        http.cookies.set("id", session)
        assert (await http.get("/admin/api/user/")).status_code == 200  # the cookie is valid
        for path in ("/notebooks", "/me", "/notebooks/search?q=x"):
            response = await http.get(path)
            assert response.status_code == 401, (path, response.text)
        created = await http.post("/notebooks", json={"name": "x"}, headers=csrf(admin_http))
        assert created.status_code == 401
        # Nor does a session token passed as a bearer token.
        response = await http.get("/notebooks", headers=auth_headers(session))
        assert response.status_code == 401


async def test_create_app_builds_the_admin_once(
    settings: Settings, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.main as main

    built: list[object] = []
    calls: list[int] = []

    def counting_build(settings: Settings) -> Any:
        real = admin_module.build_admin(settings)
        built.append(real)

        async def spy(scope: Any, receive: Any, send: Any) -> None:
            calls.append(id(real))
            await real(scope, receive, send)

        return spy

    monkeypatch.setattr(main, "build_admin", counting_build)
    app = main.create_app(settings)
    assert len(built) == 1
    async with http_client(app) as http:
        for path in ("/admin/", "/admin/login", "/admin/public/meta/", "/admin/api/tables/"):
            await http.get(path)
    assert len(built) == 1
    assert calls == [id(built[0])] * 4


async def test_the_login_limiter_outlives_requests(settings: Settings, client: Any) -> None:
    """A per-request admin would have a fresh limiter each time; this one counts on."""
    from app.main import create_app

    assert client is not None
    app = create_app(settings)
    username = await create_admin_account()
    async with http_client(app) as http:
        codes = [
            (await admin_login(http, username, "wrong")).status_code for _ in range(LOGIN_LIMIT)
        ]
        assert codes == [401] * LOGIN_LIMIT
        blocked = await admin_login(http, username)  # the right password, too late
        assert blocked.status_code == 429
        assert (await http.get("/admin/api/tables/")).status_code == 401


async def test_the_admin_uses_the_apps_engine_and_pool(admin_http: httpx.AsyncClient) -> None:
    engine = get_engine()
    for table in (UserInAdmin, NotebookInAdmin, CellRunInAdmin, BaseUser, SessionsBase):
        assert table._meta.db is engine, table
    assert engine.pool is not None  # started by the app's lifespan, not by the admin

    # Statements sent through the pool's connections are counted (app.database):
    # the admin's queries are among them.
    await asyncio.sleep(0)
    before = QueryCounter.total
    response = await admin_http.get("/admin/api/tables/notebooks/?__page_size=1")
    assert response.status_code == 200
    await asyncio.sleep(0.05)
    assert QueryCounter.total > before


# -- what the tables show ------------------------------------------------------------------


async def test_the_notebooks_table_shows_a_rest_notebook_without_its_secret(
    client: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    user, headers = await rest_user(client)
    name = f"Admin listing {uuid.uuid4().hex[:8]}"
    notebook_id = await rest_notebook(client, headers, name, CONNECTION)
    token = await stored_token(notebook_id)
    assert token is not None and token.startswith("gAAAA")  # a Fernet token at rest

    listing = await admin_http.get(
        "/admin/api/tables/notebooks/",
        params={"name": name, "__readable": "true", "__order": "-updated_at"},
    )
    assert listing.status_code == 200, listing.text
    rows = listing.json()["rows"]
    assert [row["id"] for row in rows] == [notebook_id]
    row = rows[0]
    assert row["name"] == name and row["kind"] == "user" and row["revision"] == 2
    assert row["user_id"] == user["id"]
    assert row["user_id_readable"] == user["email"]  # the owner's email
    assert "db_conn_string" not in row  # not part of the admin's notebooks at all
    assert "Hunter2" not in listing.text and token not in listing.text

    detail = await admin_http.get(f"/admin/api/tables/notebooks/{notebook_id}/?__readable=true")
    assert detail.status_code == 200
    assert "db_conn_string" not in detail.json()
    assert "Hunter2" not in detail.text and token not in detail.text
    cells = json.loads(detail.json()["cells"])  # readable JSON
    assert [cell["code"] for cell in cells] == ["", "x = 10\ny = x + 5"]
    assert cells[1]["writes"] == ["x", "y"]

    # It cannot be asked for by name (as the CSV export asks for columns), nor filtered
    # on (which would make the admin an oracle for it).
    for params in ({"__visible_fields": "id,db_conn_string"}, {"db_conn_string": token}):
        refused = await admin_http.get("/admin/api/tables/notebooks/", params=params)
        assert refused.status_code == 400, (params, refused.text)
        assert token not in refused.text

    # List columns, filters and order as configured.
    schema = (await admin_http.get("/admin/api/tables/notebooks/schema/")).json()
    extra = schema["extra"]
    assert extra["visible_column_names"] == [
        "id", "name", "user_id", "kind", "revision", "updated_at", "deleted_at"
    ]  # fmt: skip
    assert set(extra["visible_filter_names"]) == {
        "name", "user_id", "kind", "revision", "updated_at", "deleted_at"
    }  # fmt: skip
    assert extra["order_by"] == [{"column": "updated_at", "ascending": False}]
    assert "db_conn_string" not in extra["visible_fields_options"]
    assert "db_conn_string" not in schema["properties"]  # so not in the edit form either


async def test_notebooks_filter_by_owner_and_search_by_name(
    client: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    owner, headers = await rest_user(client)
    other, other_headers = await rest_user(client)
    tag = uuid.uuid4().hex[:8]
    mine = {await rest_notebook(client, headers, f"{tag} alpha") for _ in range(2)}
    theirs = await rest_notebook(client, other_headers, f"{tag} beta")

    by_owner = await admin_http.get("/admin/api/tables/notebooks/", params={"user_id": owner["id"]})
    assert by_owner.status_code == 200, by_owner.text
    assert {row["id"] for row in by_owner.json()["rows"]} == mine

    # A name filter matches a substring, case-insensitively (the admin's search box).
    found = await admin_http.get(
        "/admin/api/tables/notebooks/", params={"name": tag.upper(), "name__match": "contains"}
    )
    assert {row["id"] for row in found.json()["rows"]} == mine | {theirs}

    users = await admin_http.get(
        "/admin/api/tables/users/", params={"email": other["email"], "__readable": "true"}
    )
    assert [row["id"] for row in users.json()["rows"]] == [other["id"]]
    assert "password_hash" not in users.json()["rows"][0]

    references = await admin_http.get("/admin/api/tables/users/references/")
    assert references.json()["references"] == [{"tableName": "notebooks", "columnName": "user_id"}]


# -- what an admin may change --------------------------------------------------------------


async def test_renaming_in_the_admin_raises_the_revision_once(
    client: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    _, headers = await rest_user(client)
    notebook_id = await rest_notebook(client, headers, "before", CONNECTION)
    token = await stored_token(notebook_id)
    before = await rest_get(client, headers, notebook_id)

    form = await form_of(admin_http, "notebooks", notebook_id)
    assert "db_conn_string" not in form  # the form never holds the secret...
    saved = await admin_http.patch(
        f"/admin/api/tables/notebooks/{notebook_id}/",
        json={**form, "name": "after"},
        headers=csrf(admin_http),
    )
    assert saved.status_code == 200, saved.text

    after = await rest_get(client, headers, notebook_id)
    assert after["name"] == "after"
    assert after["revision"] == before["revision"] + 1
    assert after["updated_at"] > before["updated_at"]
    assert after["cells"] == before["cells"]
    # ...and saving leaves the stored one alone.
    assert await stored_token(notebook_id) == token
    assert after["db_conn_string"] == "postgresql://alice:***@db.example:5432/sales"

    # The form is not reloaded after a save: its stale revision is ignored, not refused.
    again = await admin_http.patch(
        f"/admin/api/tables/notebooks/{notebook_id}/",
        json={**form, "name": "after again"},
        headers=csrf(admin_http),
    )
    assert again.status_code == 200, again.text
    latest = await rest_get(client, headers, notebook_id)
    assert (latest["name"], latest["revision"]) == ("after again", before["revision"] + 2)

    # Saving without a change changes nothing, revision included.
    unchanged = await form_of(admin_http, "notebooks", notebook_id)
    same = await admin_http.patch(
        f"/admin/api/tables/notebooks/{notebook_id}/", json=unchanged, headers=csrf(admin_http)
    )
    assert same.status_code == 200
    assert (await rest_get(client, headers, notebook_id))["revision"] == before["revision"] + 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "demo"),
        ("cells", "[]"),
        ("user_id", "SOMEONE"),
        ("db_conn_string", "postgresql://mallory:clear@evil/x"),
    ],
)
async def test_read_only_notebook_fields_are_refused(
    client: httpx.AsyncClient, admin_http: httpx.AsyncClient, field: str, value: str
) -> None:
    _, headers = await rest_user(client)
    notebook_id = await rest_notebook(client, headers, "guarded", CONNECTION)
    token = await stored_token(notebook_id)
    before = await rest_get(client, headers, notebook_id)
    if value == "SOMEONE":
        value = (await rest_user(client))[0]["id"]

    form = await form_of(admin_http, "notebooks", notebook_id)
    response = await admin_http.patch(
        f"/admin/api/tables/notebooks/{notebook_id}/",
        json={**form, "name": "renamed too", field: value},
        headers=csrf(admin_http),
    )
    if field == "db_conn_string":  # not a column of the admin's notebooks
        assert response.status_code == 400 and "Unrecognised" in response.text
    else:
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", field]

    after = await rest_get(client, headers, notebook_id)
    assert after == before  # nothing at all changed, not even the name
    assert await stored_token(notebook_id) == token


async def test_rows_are_not_created_or_replaced_in_the_admin(
    client: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    _, headers = await rest_user(client)
    notebook_id = await rest_notebook(client, headers, "kept")
    form = await form_of(admin_http, "notebooks", notebook_id)
    for method, path in (
        ("POST", "/admin/api/tables/notebooks/"),
        ("PUT", f"/admin/api/tables/notebooks/{notebook_id}/"),
        ("POST", "/admin/api/tables/users/"),
    ):
        response = await admin_http.request(method, path, json=form, headers=csrf(admin_http))
        assert response.status_code == 405, (method, path, response.text)
    for method in ("PATCH", "DELETE"):
        response = await admin_http.request(
            method, "/admin/api/tables/cell_runs/1/", json={}, headers=csrf(admin_http)
        )
        assert response.status_code in (404, 405), response.text
    assert (await rest_get(client, headers, notebook_id))["name"] == "kept"


async def test_deleting_a_notebook_in_the_admin(
    client: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    _, headers = await rest_user(client)
    notebook_id = await rest_notebook(client, headers, "to delete")
    response = await admin_http.delete(
        f"/admin/api/tables/notebooks/{notebook_id}/", headers=csrf(admin_http)
    )
    assert response.status_code == 204
    assert (await client.get(f"/notebooks/{notebook_id}", headers=headers)).status_code == 404


async def test_user_email_and_activity_are_editable(
    client: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    user, headers = await rest_user(client)
    form = await form_of(admin_http, "users", user["id"])
    assert "password_hash" not in form

    new_email = unique_email("Renamed").upper()
    response = await admin_http.patch(
        f"/admin/api/tables/users/{user['id']}/",
        json={**form, "email": f"  {new_email} "},
        headers=csrf(admin_http),
    )
    assert response.status_code == 200, response.text
    assert (await client.get("/me", headers=headers)).json()["email"] == new_email.lower()

    bad = await admin_http.patch(
        f"/admin/api/tables/users/{user['id']}/",
        json={**form, "email": "not an email"},
        headers=csrf(admin_http),
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "email"]

    for field, value in (("external_id", "idp|someone"), ("password_hash", "plain")):
        refused = await admin_http.patch(
            f"/admin/api/tables/users/{user['id']}/",
            json={**form, "email": new_email, field: value},
            headers=csrf(admin_http),
        )
        assert refused.status_code in (400, 422), (field, refused.text)
    rows = await User.select(User.external_id, User.password_hash).where(User.id == user["id"])
    assert rows[0]["external_id"] is None and rows[0]["password_hash"].startswith("$argon2")

    # Deactivating a user closes the API to their tokens.
    off = await admin_http.patch(
        f"/admin/api/tables/users/{user['id']}/",
        json={"is_active": False},
        headers=csrf(admin_http),
    )
    assert off.status_code == 200, off.text
    assert (await client.get("/me", headers=headers)).status_code == 401


# -- the trash (SPEC §13) -------------------------------------------------------------------

RESTORE_FORM = "/admin/api/forms/restore-a-notebook-from-the-trash/"


async def test_the_admin_shows_trashed_notebooks_and_restores_them(
    client: httpx.AsyncClient, admin_http: httpx.AsyncClient
) -> None:
    _, headers = await rest_user(client)
    name = f"Trashed {uuid.uuid4().hex[:8]}"
    notebook_id = await rest_notebook(client, headers, name)
    live = await rest_notebook(client, headers, f"{name} live")
    assert (await client.delete(f"/notebooks/{notebook_id}", headers=headers)).status_code == 200

    listing = await admin_http.get(
        "/admin/api/tables/notebooks/",
        params={"name": name, "name__match": "starts", "deleted_at__operator": "not_null"},
    )
    assert listing.status_code == 200, listing.text
    rows = listing.json()["rows"]
    assert [row["id"] for row in rows] == [notebook_id]
    assert rows[0]["deleted_at"] is not None

    forms = (await admin_http.get("/admin/api/forms/")).json()
    assert "restore-a-notebook-from-the-trash" in {form["slug"] for form in forms}
    for missing in (live, "no-such-notebook"):
        refused = await admin_http.post(
            RESTORE_FORM, json={"notebook_id": missing}, headers=csrf(admin_http)
        )
        assert refused.status_code == 422, refused.text
        assert "not" in refused.json()["custom_form_error"]
    restored = await admin_http.post(
        RESTORE_FORM, json={"notebook_id": notebook_id}, headers=csrf(admin_http)
    )
    assert restored.status_code == 200, restored.text
    assert notebook_id in restored.json()["custom_form_success"]

    shown = await rest_get(client, headers, notebook_id)
    assert shown["name"] == name and shown["revision"] == 3  # create, cell, trash, untrash
    async with connection() as conn:
        actor = await conn.fetchval(
            "SELECT actor FROM notebook_events WHERE notebook_id = $1 ORDER BY seq DESC LIMIT 1",
            notebook_id,
        )
    assert actor == "admin"
