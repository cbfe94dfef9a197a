"""The docs page in a real browser, offline: Swagger UI, Authorize, a real call (issue 16).

A real ``cellar serve`` and Debian's headless Chromium (as in
``test_admin_browser.py``).  Every request the page makes to any other host
is refused and recorded: there must be none.  The page must render the
document, *Authorize* must take a bearer token, and *Try it out* on
``GET /me`` must show the caller's account, answered 200 by the server.
The page is saved in ``test-artifacts/swagger-me.png``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import CHROMIUM_ARGS, running_server
from tests.e2e.test_admin_browser import ARTIFACTS, WAIT_MS

if TYPE_CHECKING:
    from playwright.sync_api import Route

pytestmark = pytest.mark.e2e

SCREENSHOT = ARTIFACTS / "swagger-me.png"


def bearer_token(base_url: str) -> tuple[str, str]:
    email = f"docs-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        password = "swagger password"
        assert http.post("/auth/register", json={"email": email, "password": password}).is_success
        token = http.post("/auth/token", json={"email": email, "password": password})
        assert token.status_code == 200, token.text
        return email, token.json()["access_token"]


def test_swagger_works_offline_and_authorize_opens_the_api(
    chromium: str, service_env: dict[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    with running_server(service_env) as base_url:
        email, token = bearer_token(base_url)
        ours = urlsplit(base_url).netloc
        elsewhere: list[str] = []

        def only_ours(route: Route) -> None:
            if urlsplit(route.request.url).netloc == ours:
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, args=CHROMIUM_ARGS, headless=True, timeout=30_000
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                page.set_default_timeout(WAIT_MS)
                page.route("**/*", only_ours)
                try:
                    page.goto(f"{base_url}/schema/swagger")
                    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Cellar")

                    page.locator("button.authorize").first.click()
                    dialog = page.locator(".dialog-ux .modal-ux")
                    expect(dialog).to_contain_text("BearerToken")
                    dialog.locator("input").first.fill(token)
                    dialog.locator("button.modal-btn.authorize").click()
                    expect(dialog.get_by_text("Authorized", exact=True)).to_be_visible()
                    dialog.locator("button.btn-done").click()
                    expect(dialog).to_be_hidden()

                    operation = page.locator("#operations-users-getMe")
                    operation.locator(".opblock-summary").click()
                    operation.get_by_role("button", name="Try it out").click()
                    operation.get_by_role("button", name="Execute").click()
                    live = operation.locator(".live-responses-table")
                    status = live.locator("td.response-col_status:not(.col_header)")
                    expect(status.first).to_contain_text("200")
                    expect(live).to_contain_text(email)
                    page.screenshot(path=str(SCREENSHOT), full_page=True)
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / "swagger-failure.png"), full_page=True)
                    raise
            finally:
                browser.close()
    assert elsewhere == [], f"the docs page asked other hosts: {elsewhere}"
    assert SCREENSHOT.stat().st_size > 10_000
