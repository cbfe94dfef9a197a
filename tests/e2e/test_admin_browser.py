"""SPEC §7 end to end: a real ``cellar serve`` and a real headless Chromium.

An admin made by ``cellar create-admin`` logs in at /admin/ (a wrong password
first shows the login error), opens the notebooks table, finds a notebook
created through the REST API, opens it, and the page is saved as a screenshot
in ``test-artifacts/admin-notebook.png``.  Neither the connection string's
password nor its Fernet token appears anywhere on the page.

Chromium is Debian's ``chromium`` package, driven by Playwright's Python
package through ``executable_path`` (no browser download).  The test skips,
saying why, only when no chromium binary exists; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import CHROMIUM_ARGS, run_cli, running_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "admin-notebook.png"
WAIT_MS = 15_000
ADMIN_PASSWORD = "browser admin password"


def stored_connection_token(database_url: str, notebook_id: str) -> str:
    async def fetch() -> str:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            token: str = await connection.fetchval(
                "SELECT db_conn_string FROM notebooks WHERE id = $1", notebook_id
            )
        finally:
            await connection.close()
        return token

    return asyncio.run(fetch())


def rest_notebook(base_url: str, name: str, connection_string: str) -> tuple[str, str]:
    """(owner email, notebook id), made through the REST API like the app's frontend would."""
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        assert http.post(
            "/auth/register", json={"email": email, "password": "pw-12345678"}
        ).is_success
        token = http.post("/auth/token", json={"email": email, "password": "pw-12345678"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        created = http.post("/notebooks", json={"name": name}, headers=headers)
        assert created.status_code == 201, created.text
        notebook_id: str = created.json()["notebook_id"]
        for response in (
            http.post(
                f"/notebooks/{notebook_id}/cells",
                json={"type": "python", "code": "x = 10\ny = x + 5"},
                headers=headers,
            ),
            http.put(
                f"/notebooks/{notebook_id}/db",
                json={"connection_string": connection_string},
                headers=headers,
            ),
        ):
            assert response.is_success, response.text
    return email, notebook_id


def log_in(page: Page, username: str, password: str) -> None:
    page.locator("input[name=username]").fill(username)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Login").click()


def test_admin_logs_in_and_opens_a_rest_notebook(
    chromium: str, service_env: dict[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    username = f"browser-admin-{uuid.uuid4().hex[:8]}"
    created = run_cli(
        ["cellar", "create-admin", "--username", username, "--email", f"{username}@example.com"],
        {**service_env, "CELLAR_ADMIN_PASSWORD": ADMIN_PASSWORD},
        timeout=60,
    )
    assert created.returncode == 0, created.stdout + created.stderr

    secret = f"Pw{uuid.uuid4().hex[:12]}"
    name = f"Browser check {uuid.uuid4().hex[:8]}"
    ARTIFACTS.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)

    with running_server(service_env) as base_url:
        owner, notebook_id = rest_notebook(
            base_url, name, f"postgresql://analyst:{secret}@warehouse.example:5432/sales"
        )
        token = stored_connection_token(service_env["DATABASE_URL"], notebook_id)
        assert token.startswith("gAAAA") and secret not in token

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, args=CHROMIUM_ARGS, headless=True, timeout=30_000
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(WAIT_MS)
                page.set_default_navigation_timeout(WAIT_MS)
                try:
                    # No session: the server sends the browser to the login page.
                    page.goto(f"{base_url}/admin/")
                    expect(page.locator("input[name=username]")).to_be_visible()
                    assert page.url.startswith(f"{base_url}/admin/login"), page.url

                    log_in(page, username, "not the password")
                    popup = page.locator("#message_popup")
                    expect(popup).to_contain_text("Problem logging in")
                    expect(page.locator("input[name=username]")).to_be_visible()
                    popup.locator(".close a").click()  # or it would cover the screenshot
                    expect(popup).to_be_hidden()

                    log_in(page, username, ADMIN_PASSWORD)
                    expect(page.get_by_text("Welcome to Cellar admin")).to_be_visible()

                    page.get_by_role("link", name="Notebooks").click()
                    row = page.locator("tr", has_text=name)
                    expect(row).to_be_visible()
                    expect(row).to_contain_text(owner)  # the owner's email, not an id
                    expect(row).to_contain_text("User")  # kind

                    row.get_by_role("link", name=notebook_id).click()
                    expect(page.locator("input[name=name]")).to_have_value(name)
                    # The cells JSON is readable in the form.
                    cells = page.locator("textarea[name=cells]")
                    expect(cells).to_have_value(re.compile(r'"code": "x = 10\\ny = x \+ 5"'))
                    page.screenshot(path=str(SCREENSHOT), full_page=True)

                    # Nowhere on the page: not in the markup, the text, or any field's value.
                    values = page.eval_on_selector_all(
                        "input, textarea, select", "fields => fields.map(f => f.value)"
                    )
                    for shown in (page.content(), page.inner_text("body"), *values):
                        assert secret not in shown
                        assert token not in shown
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / "admin-failure.png"), full_page=True)
                    raise
            finally:
                browser.close()

    assert SCREENSHOT.stat().st_size > 10_000


def test_piccolo_user_create_makes_an_admin_too(service_env: dict[str, str]) -> None:
    """Piccolo's own command (flags, no prompt) makes an account the admin lets in."""
    username = f"piccolo-admin-{uuid.uuid4().hex[:8]}"
    created = run_cli(
        [
            "piccolo", "user", "create", f"--username={username}",
            f"--email={username}@example.com", f"--password={ADMIN_PASSWORD}",
            "--is_admin=t", "--is_superuser=t", "--is_active=t",
        ],
        service_env,
        cwd=ROOT,
        timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr

    with running_server(service_env) as base_url, httpx.Client(base_url=base_url) as http:
        entry = http.get("/admin/")
        assert entry.status_code == 303 and entry.headers["location"] == "login"
        assert http.get("/admin/login").status_code == 200
        login = http.post(
            "/admin/public/login/",
            json={"username": username, "password": ADMIN_PASSWORD},
            headers={"X-CSRFToken": http.cookies["csrftoken"]},
        )
        assert login.status_code == 200, login.text
        assert http.get("/admin/api/tables/").status_code == 200
        assert http.get("/admin/").status_code == 200
        assert http.get("/notebooks").status_code == 401  # the session is not a REST login
