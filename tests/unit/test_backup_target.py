"""How ``cellar backup``/``restore`` hand DATABASE_URL to libpq: the password leaves the URL."""

from __future__ import annotations

import pytest

from app.backup import libpq_target


@pytest.mark.parametrize(
    ("url", "uri", "password"),
    [
        (
            "postgresql://cellar:p%40ss%3Aw%2Frd%25@db.example.com:5432/cellar?sslmode=require",
            "postgresql://cellar@db.example.com:5432/cellar?sslmode=require",
            "p@ss:w/rd%",
        ),
        (
            "postgres://cellar@db/cellar?sslmode=require&password=s%26cret",
            "postgres://cellar@db/cellar?sslmode=require",
            "s&cret",
        ),
        (  # pgserver's embedded URL: empty password, a socket directory in the query
            "postgresql://postgres:@/cellar?host=/tmp/pgserver-x",
            "postgresql://postgres@/cellar?host=/tmp/pgserver-x",
            None,
        ),
        ("postgresql://u:pw@[::1]:6432/d", "postgresql://u@[::1]:6432/d", "pw"),
        ("postgresql://:pw@h/d", "postgresql://h/d", "pw"),
        ("postgresql:///cellar", "postgresql:///cellar", None),
    ],
)
def test_the_password_moves_from_the_url_to_pgpassword(
    url: str, uri: str, password: str | None
) -> None:
    target = libpq_target(url, {"PATH": "/usr/bin"})
    assert target.uri == uri
    assert target.env.get("PGPASSWORD") == password
    assert target.env["PATH"] == "/usr/bin"


def test_an_inherited_pgpassword_stays_when_the_url_has_none() -> None:
    target = libpq_target("postgresql://u@h/d", {"PGPASSWORD": "from the environment"})
    assert target.env["PGPASSWORD"] == "from the environment"


def test_messages_are_redacted_of_the_password() -> None:
    target = libpq_target("postgresql://u:hunter2hunter2@h/d", {})
    assert (
        target.redact("FATAL: bad password hunter2hunter2 for u") == "FATAL: bad password *** for u"
    )
    assert libpq_target("postgresql://u@h/d", {}).redact("as it is") == "as it is"
