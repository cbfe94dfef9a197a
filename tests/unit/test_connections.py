"""app/notebooks/connections.py: password masking (URL and key/value forms) and the cipher."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app.notebooks.connections import MASK, ConnectionStringCipher, mask_password


@pytest.mark.parametrize(
    ("clear", "masked"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:secret@h", "postgres://u:***@h"),
        ("postgresql://u:secret@h:5432", "postgresql://u:***@h:5432"),
        # '@' percent-encoded in the password, and a literal one (rightmost '@' ends userinfo).
        ("postgresql://u:p%40ss%3Aw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:p@ss@h:5432/db", "postgresql://u:***@h:5432/db"),
        # ':' and '/' inside the password.
        ("postgresql://u:a:b/c@h/db", "postgresql://u:***@h/db"),
        # Several hosts (libpq multi-host URL).
        (
            "postgresql://u:secret@h1:5432,h2:5433/db?target_session_attrs=read-write",
            "postgresql://u:***@h1:5432,h2:5433/db?target_session_attrs=read-write",
        ),
        # Password as a query parameter, alone and among others, any case.
        ("postgresql://h/db?password=secret", "postgresql://h/db?password=***"),
        (
            "postgresql://h:5432/db?user=u&password=secret&sslmode=require",
            "postgresql://h:5432/db?user=u&password=***&sslmode=require",
        ),
        ("postgresql://h/db?PASSWORD=secret", "postgresql://h/db?PASSWORD=***"),
        # Both a userinfo password and a query one.
        (
            "postgresql://u:one@h/db?password=two",
            "postgresql://u:***@h/db?password=***",
        ),
        # Query and fragment without a path.
        ("postgresql://u:secret@h?sslmode=require", "postgresql://u:***@h?sslmode=require"),
    ],
)
def test_mask_password_url_forms(clear: str, masked: str) -> None:
    assert mask_password(clear) == masked


@pytest.mark.parametrize(
    "clear",
    [
        "postgresql://u@h:5432/db",
        "postgresql://h/db",
        "postgresql://h1:5432,h2:5433/db?sslmode=require",
        "postgresql:///db?host=/var/run/postgresql",
        "host=h port=5432 user=u dbname=db",
        "",
    ],
)
def test_mask_password_without_password_is_unchanged(clear: str) -> None:
    assert mask_password(clear) == clear


@pytest.mark.parametrize(
    ("clear", "masked"),
    [
        ("host=h password=secret user=u", "host=h password=*** user=u"),
        ("password=secret", "password=***"),
        ("host=h password='my secret words' user=u", "host=h password=*** user=u"),
        (r"host=h password='it\'s secret' user=u", "host=h password=*** user=u"),
        ("host=h password = secret user=u", "host=h password = *** user=u"),
        ("host=h PASSWORD=secret", "host=h PASSWORD=***"),
    ],
)
def test_mask_password_key_value_forms(clear: str, masked: str) -> None:
    assert mask_password(clear) == masked


@pytest.mark.parametrize(
    "clear",
    [
        "postgresql://u:secret@h/db",
        "postgresql://u:p@ss@h/db",
        "postgresql://h/db?user=u&password=secret",
        "host=h password='secret with spaces' user=u",
    ],
)
def test_masked_strings_never_contain_the_password(clear: str) -> None:
    result = mask_password(clear)
    for secret in ("secret", "p@ss"):
        assert secret not in result
    assert MASK in result


def test_mask_password_query_password_containing_at() -> None:
    assert mask_password("postgresql://h/db?password=p@ss") == "postgresql://h/db?password=***"


def test_mask_password_keeps_host_when_query_has_at() -> None:
    clear = "postgresql://u:secret@h/db?application_name=a@b"
    assert mask_password(clear) == "postgresql://u:***@h/db?application_name=a@b"


@pytest.fixture
def cipher() -> ConnectionStringCipher:
    return ConnectionStringCipher(Fernet.generate_key().decode())


def test_cipher_round_trip(cipher: ConnectionStringCipher) -> None:
    clear = "postgresql://alice:s3cr3t-é@db.example.com:5432/prod"
    token = cipher.encrypt(clear)
    assert token != clear
    assert "alice" not in token
    assert "s3cr3t" not in token
    assert cipher.decrypt(token) == clear


def test_cipher_tokens_differ_for_the_same_string(cipher: ConnectionStringCipher) -> None:
    clear = "postgresql://u:p@h/db"
    first, second = cipher.encrypt(clear), cipher.encrypt(clear)
    assert first != second
    assert cipher.decrypt(first) == cipher.decrypt(second) == clear


def test_decrypt_with_another_key_is_none(cipher: ConnectionStringCipher) -> None:
    other = ConnectionStringCipher(Fernet.generate_key().decode())
    token = other.encrypt("postgresql://u:p@h/db")
    assert cipher.decrypt(token) is None
    assert other.decrypt(token) == "postgresql://u:p@h/db"


@pytest.mark.parametrize("garbage", ["", "not-a-token", "gAAAAAB" + "x" * 40, "ünïcode"])
def test_decrypt_garbage_is_none(cipher: ConnectionStringCipher, garbage: str) -> None:
    assert cipher.decrypt(garbage) is None


def test_masked_of_a_token_masks_the_password(cipher: ConnectionStringCipher) -> None:
    token = cipher.encrypt("postgresql://u:secret@h:5432/db")
    assert cipher.masked(token) == "postgresql://u:***@h:5432/db"
    key_value = cipher.encrypt("host=h password=secret user=u")
    assert cipher.masked(key_value) == "host=h password=*** user=u"


def test_masked_without_password_is_the_clear_string(cipher: ConnectionStringCipher) -> None:
    assert cipher.masked(cipher.encrypt("postgresql://h/db")) == "postgresql://h/db"


def test_masked_of_none_is_none(cipher: ConnectionStringCipher) -> None:
    assert cipher.masked(None) is None


def test_masked_of_a_foreign_token_is_only_the_mask(cipher: ConnectionStringCipher) -> None:
    other = ConnectionStringCipher(Fernet.generate_key().decode())
    assert cipher.masked(other.encrypt("postgresql://u:secret@h/db")) == MASK
