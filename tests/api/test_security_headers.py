"""Security headers on every answer (issue 17), as a browser or a shared cache would read them.

``nosniff`` and ``Referrer-Policy`` go on everything, routed or not (a 404
for an unknown path, the mounted admin); frame protection on HTML pages;
``Cache-Control: private, no-cache`` on reads made with a bearer token, and
ETag revalidation still answers 304 (with the same header).  The ``server``
header and the proxy settings belong to the real process:
tests/e2e/test_proxy_headers.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.helpers import new_user_headers

if TYPE_CHECKING:
    from httpx import AsyncClient, Response

PRIVATE = "private, no-cache"


def assert_basic(response: Response) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff", response.headers
    assert response.headers.get("referrer-policy") == "same-origin", response.headers


def assert_not_framable(response: Response) -> None:
    assert response.headers.get("x-frame-options") == "DENY", response.headers
    assert response.headers.get("content-security-policy") == "frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/health", 200),
        ("/schema/openapi.json", 200),
        ("/no/such/route", 404),
        ("/me", 401),
        ("/admin/", 303),
        ("/admin/api/tables/", 401),
    ],
)
async def test_every_answer_is_nosniff_with_a_referrer_policy(
    client: AsyncClient, path: str, status: int
) -> None:
    response = await client.get(path)
    assert response.status_code == status, response.text
    assert_basic(response)
    # No credentials, nothing private (the admin's redirect sets its own no-store).
    assert response.headers.get("cache-control") in (None, "no-store"), response.headers


async def test_every_header_once(client: AsyncClient) -> None:
    response = await client.get("/health")
    for name in ("x-content-type-options", "referrer-policy"):
        assert len(response.headers.get_list(name)) == 1, response.headers


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger", "/admin/login"])
async def test_html_pages_cannot_be_framed(client: AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert_basic(response)
    assert_not_framable(response)


async def test_json_answers_carry_no_frame_headers(client: AsyncClient) -> None:
    response = await client.get("/health")
    assert "x-frame-options" not in response.headers
    assert "content-security-policy" not in response.headers


async def test_authenticated_reads_are_private_and_revalidate_with_the_etag(
    client: AsyncClient,
) -> None:
    headers = await new_user_headers(client)
    created = await client.post("/notebooks", json={"name": "cache"}, headers=headers)
    assert created.status_code == 201, created.text
    path = f"/notebooks/{created.json()['notebook_id']}"

    first = await client.get(path, headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers.get("cache-control") == PRIVATE
    assert_basic(first)
    etag = first.headers["etag"]

    again = await client.get(path, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304, again.text
    assert again.headers.get("cache-control") == PRIVATE
    assert again.headers["etag"] == etag

    renamed = await client.put(f"{path}/name", json={"name": "changed"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    stale = await client.get(path, headers={**headers, "If-None-Match": etag})
    assert stale.status_code == 200, stale.text
    assert stale.json()["name"] == "changed"
    assert stale.headers["etag"] != etag

    for read in ("/notebooks", "/me", f"{path}/graph", "/notebooks/search?q=changed"):
        response = await client.get(read, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers.get("cache-control") == PRIVATE, read
