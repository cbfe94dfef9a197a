"""SPEC §2 over HTTP: register, token, /me, and every way a token can be wrong."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import EXTERNAL_AUDIENCE, EXTERNAL_ISSUER, EXTERNAL_KEY, TEST_ENV
from tests.helpers import PASSWORD, auth_headers, login, register_user, unique_email
from tests.helpers import external_token as _external_token


async def test_register_returns_id_and_lowercased_email(client: Any) -> None:
    email = unique_email("MixedCase").replace("mixedcase", "MixedCase")
    response = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == email.lower()
    assert uuid.UUID(body["id"])


async def test_register_taken_email_is_409_whatever_the_case(client: Any) -> None:
    user = await register_user(client)
    response = await client.post(
        "/auth/register", json={"email": user["email"].upper(), "password": PASSWORD}
    )
    assert response.status_code == 409
    assert "email" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.com", "password": "short"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": 12, "password": PASSWORD}, "email"),
        ({"password": PASSWORD}, "email"),
        ({"email": "x@example.com"}, "password"),
        ({"email": "x@example.com", "password": "p" * 2000}, "password"),
    ],
)
async def test_register_bad_input_is_400_naming_the_field(
    client: Any, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]


async def test_register_malformed_json_is_400(client: Any) -> None:
    response = await client.post(
        "/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


async def test_token_then_me(client: Any) -> None:
    user = await register_user(client)
    response = await client.post("/auth/token", json={"email": user["email"], "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == int(TEST_ENV.get("TOKEN_LIFETIME_SECONDS", "3600"))
    me = await client.get("/me", headers=auth_headers(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert me.json()["email"] == user["email"]
    assert me.json()["external_id"] is None
    assert me.json()["created_at"]


async def test_unknown_email_and_wrong_password_get_the_same_401(client: Any) -> None:
    user = await register_user(client)
    wrong_password = await client.post(
        "/auth/token", json={"email": user["email"], "password": "wrong password"}
    )
    unknown_email = await client.post(
        "/auth/token", json={"email": unique_email(), "password": PASSWORD}
    )
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _valid_token(client: Any) -> tuple[str, dict[str, Any]]:
    user = await register_user(client)
    return await login(client, user["email"]), user


async def test_me_without_or_with_garbage_authorization_is_401(client: Any) -> None:
    assert (await client.get("/me")).status_code == 401
    for header in ["Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "bearer a.b.c"]:
        response = await client.get("/me", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"] == "Bearer"


async def test_tampered_token_is_401(client: Any) -> None:
    token, _ = await _valid_token(client)
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert (
        await client.get("/me", headers=auth_headers(f"{header}.{payload}.{signature}"))
    ).status_code == 200
    assert (
        await client.get("/me", headers=auth_headers(f"{header}.{payload}.{flipped}"))
    ).status_code == 401
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["sub"] = str(uuid.uuid4())
    forged = f"{header}.{_b64(claims)}.{signature}"
    assert (await client.get("/me", headers=auth_headers(forged))).status_code == 401


async def test_expired_own_token_is_401(client: Any) -> None:
    _, user = await _valid_token(client)
    now = int(time.time())
    expired = jwt.encode(
        {"sub": user["id"], "iat": now - 7200, "exp": now - 3600, "iss": "cellar"},
        TEST_ENV["APP_SECRET_KEY"],
        algorithm="HS256",
    )
    assert (await client.get("/me", headers=auth_headers(expired))).status_code == 401


async def test_alg_none_token_is_401(client: Any) -> None:
    _, user = await _valid_token(client)
    now = int(time.time())
    claims = {"sub": user["id"], "iat": now, "exp": now + 600, "iss": "cellar"}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert (await client.get("/me", headers=auth_headers(unsigned))).status_code == 401


async def test_external_token_creates_the_user_on_first_sight(client: Any) -> None:
    subject = f"user_{uuid.uuid4().hex}"
    first = await client.get("/me", headers=auth_headers(_external_token(sub=subject)))
    assert first.status_code == 200, first.text
    assert first.json()["external_id"] == subject
    assert first.json()["email"] is None
    again = await client.get("/me", headers=auth_headers(_external_token(sub=subject)))
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.test.invalid/"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
    ],
    ids=["wrong-audience", "wrong-issuer", "expired"],
)
async def test_bad_external_tokens_are_401(client: Any, overrides: dict[str, Any]) -> None:
    response = await client.get("/me", headers=auth_headers(_external_token(**overrides)))
    assert response.status_code == 401


async def test_hs256_token_signed_with_the_public_key_is_401(client: Any) -> None:
    """Algorithm confusion: the public key must never serve as an HMAC secret."""
    public_pem = EXTERNAL_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {
        "sub": "x",
        "iss": EXTERNAL_ISSUER,
        "aud": EXTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64(claims)
    import hashlib
    import hmac

    signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert (await client.get("/me", headers=auth_headers(token))).status_code == 401


async def test_deactivated_user_token_is_401(client: Any) -> None:
    token, user = await _valid_token(client)
    from app.users.tables import User

    await User.update({User.is_active: False}).where(User.id == uuid.UUID(user["id"]))
    assert (await client.get("/me", headers=auth_headers(token))).status_code == 401


async def test_a_weaker_password_hash_is_replaced_on_the_next_login(client: Any) -> None:
    """The stored hash follows argon2's current parameters (``needs_rehash``)."""
    from argon2 import PasswordHasher

    from app.auth.passwords import needs_rehash, verify_password
    from app.database import connection

    user = await register_user(client)
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    async with connection() as conn:
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", uuid.UUID(user["id"]), weak
        )
    await login(client, user["email"])
    async with connection() as conn:
        stored = await conn.fetchval(
            "SELECT password_hash FROM users WHERE id = $1", uuid.UUID(user["id"])
        )
    assert stored != weak and not needs_rehash(stored)
    assert verify_password(stored, PASSWORD)
    await login(client, user["email"])  # and the new hash works
