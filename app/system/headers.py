"""Security headers on every answer the app sends, whichever route (or none) made it.

A Litestar ``before_send`` hook rather than a middleware: app-level
middleware runs only inside a matched route, so a 404 for an unknown path,
a 405, or an answer of the mounted admin would go out without the headers.
The header values are built once, at import; per answer the hook only looks
at the response's content type and the request's method and credentials.

* ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``
  everywhere (same-origin: the admin's CSRF check may read the Referer of
  its own pages; nothing, notebook ids included, goes to other sites).
* Frame protection on HTML pages (``/admin/``, the docs under ``/schema``):
  ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``, the
  CSP carrying nothing else so the pages' own scripts and styles still load.
* ``Cache-Control: private, no-cache`` on reads made with credentials
  (``Authorization``): a shared cache must not keep one user's notebook,
  and the browser revalidates with the ETag (304) instead of guessing.
  A route that set its own ``Cache-Control`` keeps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar.types import Message, Scope

EVERY_ANSWER: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
HTML_PAGES: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
PRIVATE_READS = (b"cache-control", b"private, no-cache")
READ_METHODS = frozenset({"GET", "HEAD"})


async def security_headers(message: Message, scope: Scope) -> None:
    """Litestar ``before_send`` hook: add the headers to the start of an HTTP answer.

    A header the answer already has is left as it is, never sent twice.
    """
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers", ()))
    present = {bytes(name).lower(): bytes(value) for name, value in headers}
    wanted = list(EVERY_ANSWER)
    if present.get(b"content-type", b"").startswith(b"text/html"):
        wanted.extend(HTML_PAGES)
    if scope.get("method") in READ_METHODS and any(
        name == b"authorization" for name, _ in scope["headers"]
    ):
        wanted.append(PRIVATE_READS)
    headers.extend(header for header in wanted if header[0] not in present)
    message["headers"] = headers
