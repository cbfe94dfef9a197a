"""Unit tests for app.auth.tokens: own HS256 tokens, external RS256/ES256 tokens, JWKS."""

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.auth.tokens import Identity, TokenError, TokenService

SECRET = "unit-test-secret-key-that-is-long-enough-for-hs512-too-0123456789abcdef"
OTHER_SECRET = "another-unit-test-secret-key-long-enough-9876543210"
LIFETIME = 900
ISSUER = "https://idp.example.test/"
AUDIENCE = "cellar-api"
EXTERNAL_SUB = "idp|user-42"
USER_ID = str(uuid.uuid4())

_DROP = object()


# --------------------------------------------------------------------------- helpers


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(obj: Any) -> str:
    return _b64url(json.dumps(obj, separators=(",", ":")).encode())


def _with(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **overrides}
    return {k: v for k, v in merged.items() if v is not _DROP}


def own_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": USER_ID,
        "iat": now,
        "exp": now + LIFETIME,
        "iss": "cellar",
        "token_use": "access",
    }
    return _with(base, overrides)


def external_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": EXTERNAL_SUB, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    return _with(base, overrides)


def public_pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def hs256_by_hand(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token signed with an arbitrary byte string (PyJWT refuses PEM keys)."""
    signing_input = f"{_b64json({'alg': 'HS256', 'typ': 'JWT'})}.{_b64json(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def flip_first_char(segment: str) -> str:
    # The first character always maps to real bits (the last one may be padding bits only).
    return ("A" if segment[0] != "A" else "B") + segment[1:]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def service() -> TokenService:
    return TokenService(secret_key=SECRET, lifetime_seconds=LIFETIME, leeway_seconds=0)


def _external_service(pem: str) -> TokenService:
    return TokenService(
        secret_key=SECRET,
        lifetime_seconds=LIFETIME,
        external_issuer=ISSUER,
        external_audience=AUDIENCE,
        external_public_key=pem,
        leeway_seconds=0,
    )


@pytest.fixture
def rsa_service(rsa_key: rsa.RSAPrivateKey) -> TokenService:
    return _external_service(public_pem(rsa_key))


@pytest.fixture
def ec_service(ec_key: ec.EllipticCurvePrivateKey) -> TokenService:
    return _external_service(public_pem(ec_key))


class JwksServer(msgspec.Struct):
    url: str
    hits: list[int]  # one element: number of GET /jwks.json served


@pytest.fixture(scope="module")
def jwks_server(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> Iterator[JwksServer]:
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    body = json.dumps(
        {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }
    ).encode()
    hits = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            hits[0] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield JwksServer(url=f"http://127.0.0.1:{server.server_port}/jwks.json", hits=hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours *_proxy variables; the JWKS server is on loopback."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")


def _jwks_service(url: str) -> TokenService:
    return TokenService(
        secret_key=SECRET,
        lifetime_seconds=LIFETIME,
        external_issuer=ISSUER,
        external_audience=AUDIENCE,
        external_jwks_url=url,
        leeway_seconds=0,
    )


@pytest.fixture
def jwks_service(jwks_server: JwksServer, no_proxy: None) -> TokenService:
    return _jwks_service(jwks_server.url)


# --------------------------------------------------------------------------- own tokens


def test_issue_verify_round_trip(service: TokenService) -> None:
    before = int(time.time())
    token, expires_in = service.issue(USER_ID)
    assert expires_in == LIFETIME

    identity = service.verify(token)
    assert identity.user_id == USER_ID
    assert identity.external_subject is None
    assert before + LIFETIME <= identity.expires_at <= int(time.time()) + LIFETIME

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert claims["sub"] == USER_ID
    assert claims["iss"] == "cellar"
    assert claims["token_use"] == "access"
    assert claims["exp"] - claims["iat"] == LIFETIME
    assert claims["exp"] == identity.expires_at


def test_issue_rejects_a_non_uuid_user_id(service: TokenService) -> None:
    with pytest.raises(ValueError):
        service.issue("not-a-uuid")


def test_uuid_is_normalised(service: TokenService) -> None:
    token, _ = service.issue(USER_ID.upper())
    assert service.verify(token).user_id == USER_ID


def test_crafted_own_token_is_accepted(service: TokenService) -> None:
    token = jwt.encode(own_claims(), SECRET, algorithm="HS256")
    assert service.verify(token) == Identity(user_id=USER_ID, expires_at=own_claims()["exp"])


def test_expired_token(service: TokenService) -> None:
    now = int(time.time())
    token = jwt.encode(own_claims(iat=now - 120, exp=now - 60), SECRET, algorithm="HS256")
    with pytest.raises(TokenError, match="expired"):
        service.verify(token)


def test_leeway_tolerates_small_clock_skew() -> None:
    lenient = TokenService(secret_key=SECRET, lifetime_seconds=LIFETIME, leeway_seconds=30)
    now = int(time.time())
    token = jwt.encode(own_claims(iat=now - 120, exp=now - 5), SECRET, algorithm="HS256")
    assert lenient.verify(token).user_id == USER_ID


def test_issued_in_the_future_is_rejected(service: TokenService) -> None:
    now = int(time.time())
    token = jwt.encode(own_claims(iat=now + 3600), SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        service.verify(token)


def test_tampered_signature(service: TokenService) -> None:
    token, _ = service.issue(USER_ID)
    header, payload, signature = token.split(".")
    with pytest.raises(TokenError):
        service.verify(f"{header}.{payload}.{flip_first_char(signature)}")
    with pytest.raises(TokenError):
        service.verify(f"{header}.{payload}.")


def test_tampered_payload(service: TokenService) -> None:
    token, _ = service.issue(USER_ID)
    header, _payload, signature = token.split(".")
    forged = _b64json(own_claims(sub=str(uuid.uuid4())))
    with pytest.raises(TokenError):
        service.verify(f"{header}.{forged}.{signature}")
    longer = _b64json(own_claims(exp=int(time.time()) + 10 * 365 * 86400))
    with pytest.raises(TokenError):
        service.verify(f"{header}.{longer}.{signature}")


def test_wrong_secret(service: TokenService) -> None:
    other = TokenService(secret_key=OTHER_SECRET, lifetime_seconds=LIFETIME)
    token, _ = other.issue(USER_ID)
    with pytest.raises(TokenError):
        service.verify(token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_rejected(service: TokenService, rsa_service: TokenService, alg: str) -> None:
    token = f"{_b64json({'alg': alg, 'typ': 'JWT'})}.{_b64json(own_claims())}."
    for svc in (service, rsa_service):
        with pytest.raises(TokenError):
            svc.verify(token)


def test_header_without_alg_is_rejected(service: TokenService) -> None:
    token = f"{_b64json({'typ': 'JWT'})}.{_b64json(own_claims())}.abc"
    with pytest.raises(TokenError):
        service.verify(token)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_rejected(service: TokenService, alg: str) -> None:
    token = jwt.encode(own_claims(), SECRET, algorithm=alg)
    with pytest.raises(TokenError):
        service.verify(token)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss"])
def test_missing_required_claim(service: TokenService, claim: str) -> None:
    token = jwt.encode(own_claims(**{claim: _DROP}), SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        service.verify(token)


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "someone-else"},
        {"token_use": "refresh"},
        {"token_use": _DROP},
        {"sub": "not-a-uuid"},
        {"sub": 12345},
        {"sub": ""},
        {"aud": "cellar"},
        {"exp": "soon"},
    ],
    ids=repr,
)
def test_own_token_with_bad_claims(service: TokenService, overrides: dict[str, Any]) -> None:
    token = jwt.encode(own_claims(**overrides), SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        service.verify(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9..",
        f"{_b64url(b'not json')}.{_b64json({})}.",
        f"{_b64json(['alg', 'HS256'])}.{_b64json({})}.",
        f"{_b64json({'alg': 'HS256'})}.!!!!.AAAA",
        f"{_b64json({'alg': 'HS256', 'kid': 5})}.{_b64json(own_claims())}.",
        "\udcff.\udcff.\udcff",
        "x" * 20_000,
    ],
    ids=lambda t: repr(t)[:30],
)
def test_malformed_tokens(service: TokenService, token: str) -> None:
    with pytest.raises(TokenError):
        service.verify(token)


def test_error_messages_are_short_and_generic(service: TokenService) -> None:
    with pytest.raises(TokenError) as excinfo:
        service.verify("a.b.c")
    assert len(str(excinfo.value)) < 40
    assert SECRET not in str(excinfo.value)


# --------------------------------------------------------------------------- algorithm confusion


def test_hs256_signed_with_the_rsa_public_key_is_rejected(
    rsa_service: TokenService, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = public_pem(rsa_key).encode()
    for claims in (own_claims(), external_claims()):
        with pytest.raises(TokenError):
            rsa_service.verify(hs256_by_hand(claims, pem))


def test_hs256_signed_with_the_ec_public_key_is_rejected(
    ec_service: TokenService, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    pem = public_pem(ec_key).encode()
    for claims in (own_claims(), external_claims()):
        with pytest.raises(TokenError):
            ec_service.verify(hs256_by_hand(claims, pem))


def test_hand_signing_helper_is_sound(service: TokenService) -> None:
    """Guards the confusion tests: the same helper with the real secret must pass."""
    assert service.verify(hs256_by_hand(own_claims(), SECRET.encode())).user_id == USER_ID


def test_external_claims_in_an_hs256_token_do_not_make_it_external(
    rsa_service: TokenService,
) -> None:
    token = jwt.encode(external_claims(), SECRET, algorithm="HS256")
    with pytest.raises(TokenError):  # not iss=cellar, not a UUID sub
        rsa_service.verify(token)


def test_header_alg_must_match_the_key_type(
    rsa_service: TokenService,
    ec_service: TokenService,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    with pytest.raises(TokenError):
        ec_service.verify(jwt.encode(external_claims(), rsa_key, algorithm="RS256"))
    with pytest.raises(TokenError):
        rsa_service.verify(jwt.encode(external_claims(), ec_key, algorithm="ES256"))


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES384"])
def test_other_asymmetric_algorithms_are_rejected(
    rsa_service: TokenService, rsa_key: rsa.RSAPrivateKey, alg: str
) -> None:
    key: Any = rsa_key if alg[0] in "RP" else ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(TokenError):
        rsa_service.verify(jwt.encode(external_claims(), key, algorithm=alg))


# --------------------------------------------------------------------------- external: PEM key


def test_rs256_external_token(rsa_service: TokenService, rsa_key: rsa.RSAPrivateKey) -> None:
    claims = external_claims()
    identity = rsa_service.verify(jwt.encode(claims, rsa_key, algorithm="RS256"))
    assert identity == Identity(external_subject=EXTERNAL_SUB, expires_at=claims["exp"])
    assert identity.user_id is None
    assert rsa_service.external_enabled


def test_es256_external_token(ec_service: TokenService, ec_key: ec.EllipticCurvePrivateKey) -> None:
    claims = external_claims()
    identity = ec_service.verify(jwt.encode(claims, ec_key, algorithm="ES256"))
    assert identity == Identity(external_subject=EXTERNAL_SUB, expires_at=claims["exp"])


def test_audience_list_containing_ours_is_accepted(
    rsa_service: TokenService, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(external_claims(aud=["other", AUDIENCE]), rsa_key, algorithm="RS256")
    assert rsa_service.verify(token).external_subject == EXTERNAL_SUB


def test_own_tokens_still_work_with_external_config(rsa_service: TokenService) -> None:
    token, _ = rsa_service.issue(USER_ID)
    assert rsa_service.verify(token).user_id == USER_ID


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"aud": ["someone-else"]},
        {"aud": _DROP},
        {"iss": "https://evil.example.test/"},
        {"iss": "cellar"},
        {"iss": _DROP},
        {"exp": int(time.time()) - 60},
        {"exp": _DROP},
        {"sub": _DROP},
        {"sub": ""},
        {"sub": 42},
        {"nbf": int(time.time()) + 3600},
    ],
    ids=repr,
)
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_external_token_with_bad_claims(
    request: pytest.FixtureRequest, kind: str, overrides: dict[str, Any]
) -> None:
    svc: TokenService = request.getfixturevalue(f"{kind}_service")
    key = request.getfixturevalue(f"{kind}_key")
    alg = "RS256" if kind == "rsa" else "ES256"
    token = jwt.encode(external_claims(**overrides), key, algorithm=alg)
    with pytest.raises(TokenError):
        svc.verify(token)


def test_external_token_expired(rsa_service: TokenService, rsa_key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    token = jwt.encode(external_claims(iat=now - 120, exp=now - 1), rsa_key, algorithm="RS256")
    with pytest.raises(TokenError, match="expired"):
        rsa_service.verify(token)


def test_external_token_signed_by_another_key(
    rsa_service: TokenService, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(TokenError):
        rsa_service.verify(jwt.encode(external_claims(), other_rsa_key, algorithm="RS256"))


def test_external_tampered_signature_and_payload(
    rsa_service: TokenService, rsa_key: rsa.RSAPrivateKey
) -> None:
    header, payload, signature = jwt.encode(external_claims(), rsa_key, algorithm="RS256").split(
        "."
    )
    with pytest.raises(TokenError):
        rsa_service.verify(f"{header}.{payload}.{flip_first_char(signature)}")
    forged = _b64json(external_claims(sub="idp|admin"))
    with pytest.raises(TokenError):
        rsa_service.verify(f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_external_token_without_external_config(
    service: TokenService,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    alg: str,
) -> None:
    assert not service.external_enabled
    key: Any = rsa_key if alg == "RS256" else ec_key
    with pytest.raises(TokenError):
        service.verify(jwt.encode(external_claims(), key, algorithm=alg))


# --------------------------------------------------------------------------- external: JWKS


def test_jwks_rs256_token(
    jwks_service: TokenService, jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert jwks_service.external_enabled
    hits_before = jwks_server.hits[0]
    claims = external_claims()
    token = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert jwks_service.verify(token) == Identity(
        external_subject=EXTERNAL_SUB, expires_at=claims["exp"]
    )
    # The key set is cached: a second token does not fetch it again.
    token2 = jwt.encode(
        external_claims(sub="idp|other"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    assert jwks_service.verify(token2).external_subject == "idp|other"
    assert jwks_server.hits[0] == hits_before + 1


def test_jwks_es256_token(jwks_service: TokenService, ec_key: ec.EllipticCurvePrivateKey) -> None:
    token = jwt.encode(external_claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert jwks_service.verify(token).external_subject == EXTERNAL_SUB


def test_jwks_unknown_kid(jwks_service: TokenService, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(external_claims(), rsa_key, algorithm="RS256", headers={"kid": "nope"})
    with pytest.raises(TokenError):
        jwks_service.verify(token)


def test_jwks_missing_kid(jwks_service: TokenService, rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(TokenError):
        jwks_service.verify(jwt.encode(external_claims(), rsa_key, algorithm="RS256"))


def test_jwks_known_kid_but_signed_by_another_key(
    jwks_service: TokenService, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(
        external_claims(), other_rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    with pytest.raises(TokenError):
        jwks_service.verify(token)


def test_jwks_header_alg_must_match_the_jwk(
    jwks_service: TokenService, rsa_key: rsa.RSAPrivateKey
) -> None:
    # RS256 header pointing at the EC key.
    token = jwt.encode(external_claims(), rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    with pytest.raises(TokenError):
        jwks_service.verify(token)


def test_jwks_wrong_audience_and_issuer(
    jwks_service: TokenService, rsa_key: rsa.RSAPrivateKey
) -> None:
    for overrides in ({"aud": "someone-else"}, {"iss": "https://evil.example.test/"}):
        token = jwt.encode(
            external_claims(**overrides), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
        )
        with pytest.raises(TokenError):
            jwks_service.verify(token)


def test_jwks_hs256_confusion_with_the_published_key(
    jwks_service: TokenService, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = hs256_by_hand(external_claims(), public_pem(rsa_key).encode())
    with pytest.raises(TokenError):
        jwks_service.verify(token)


def test_jwks_fetch_failure(no_proxy: None, rsa_key: rsa.RSAPrivateKey) -> None:
    # A port that was free a moment ago: connection refused, quickly.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    svc = _jwks_service(f"http://127.0.0.1:{port}/jwks.json")
    token = jwt.encode(external_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    with pytest.raises(TokenError, match="unavailable"):
        svc.verify(token)


def test_jwks_endpoint_not_found(
    jwks_server: JwksServer, no_proxy: None, rsa_key: rsa.RSAPrivateKey
) -> None:
    svc = _jwks_service(jwks_server.url.replace("/jwks.json", "/missing"))
    token = jwt.encode(external_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    with pytest.raises(TokenError):
        svc.verify(token)


# --------------------------------------------------------------------------- construction


def test_external_key_source_requires_issuer_and_audience(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key)
    extras: list[dict[str, Any]] = [
        {"external_public_key": pem, "external_audience": AUDIENCE},
        {"external_public_key": pem, "external_issuer": ISSUER},
        {"external_jwks_url": "https://idp.example.test/jwks", "external_issuer": ISSUER},
        {"external_jwks_url": "https://idp.example.test/jwks", "external_audience": AUDIENCE},
    ]
    for extra in extras:
        with pytest.raises(ValueError, match="issuer"):
            TokenService(secret_key=SECRET, lifetime_seconds=LIFETIME, **extra)


def test_issuer_and_audience_alone_do_not_enable_external() -> None:
    svc = TokenService(
        secret_key=SECRET,
        lifetime_seconds=LIFETIME,
        external_issuer=ISSUER,
        external_audience=AUDIENCE,
    )
    assert not svc.external_enabled


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret_key": "too-short"},
        {"lifetime_seconds": 0},
        {"leeway_seconds": -1},
        {"external_public_key": "not a pem"},
        {"external_jwks_url": "file:///etc/passwd"},
        {"external_public_key": "x", "external_jwks_url": "https://idp.example.test/jwks"},
    ],
    ids=repr,
)
def test_invalid_configuration(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "secret_key": SECRET,
        "lifetime_seconds": LIFETIME,
        "external_issuer": ISSUER,
        "external_audience": AUDIENCE,
    }
    with pytest.raises(ValueError):
        TokenService(**{**base, **kwargs})


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["rsa-1024", "ec-p384"],
)
def test_unsupported_public_keys(make_key: Any) -> None:
    with pytest.raises(ValueError):
        _external_service(public_pem(make_key()))


# --------------------------------------------------------------------------- Identity


def test_identity_requires_exactly_one_id() -> None:
    with pytest.raises(ValueError):
        Identity(expires_at=1)
    with pytest.raises(ValueError):
        Identity(user_id=USER_ID, external_subject=EXTERNAL_SUB, expires_at=1)
    identity = Identity(user_id=USER_ID, expires_at=1)
    with pytest.raises(AttributeError):
        identity.user_id = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- pinning invariant


def test_every_decode_pins_exactly_the_keys_algorithm(
    monkeypatch: pytest.MonkeyPatch,
    service: TokenService,
    rsa_service: TokenService,
    ec_service: TokenService,
    jwks_service: TokenService,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    """White-box: PyJWT's own key-type guards would hide a widened ``algorithms`` list."""
    import app.auth.tokens as tokens_module

    seen: list[tuple[type, list[str]]] = []
    real_decode = jwt.decode

    def spy(token: str, key: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append((type(key), list(kwargs["algorithms"])))
        return real_decode(token, key, *args, **kwargs)

    monkeypatch.setattr(tokens_module.jwt, "decode", spy)

    service.verify(service.issue(USER_ID)[0])
    rsa_service.verify(jwt.encode(external_claims(), rsa_key, algorithm="RS256"))
    ec_service.verify(jwt.encode(external_claims(), ec_key, algorithm="ES256"))
    jwks_service.verify(
        jwt.encode(external_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    )
    jwks_service.verify(
        jwt.encode(external_claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    )
    assert [algs for _, algs in seen] == [["HS256"], ["RS256"], ["ES256"], ["RS256"], ["ES256"]]
    assert seen[0][0] is str  # only ever our secret for HS256
    assert all(kind is not str for kind, _ in seen[1:])  # public keys for the rest


async def test_verify_async_fetches_jwks_off_the_event_loop(
    jwks_service: TokenService, rsa_key: rsa.RSAPrivateKey, service: TokenService
) -> None:
    """A JWKS fetch must not run on the event loop thread; our own tokens stay inline."""
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = jwks_service.verify

    def recording_verify(token: str) -> Identity:
        seen.append(threading.get_ident())
        return original(token)

    jwks_service.verify = recording_verify  # type: ignore[method-assign]
    token = jwt.encode(external_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    identity = await jwks_service.verify_async(token)
    assert identity.external_subject == EXTERNAL_SUB
    assert seen and seen[0] != loop_thread
    own, _ = service.issue(str(uuid.uuid4()))
    assert (await service.verify_async(own)).user_id is not None


def test_verified_tokens_are_remembered_only_until_they_expire() -> None:
    """The verification memo must never outlive the token's own exp."""
    service = TokenService(secret_key="s" * 40, lifetime_seconds=60, leeway_seconds=0)
    user_id = str(uuid.uuid4())
    now = int(time.time())
    token = jwt.encode(
        {"sub": user_id, "iat": now, "exp": now + 1, "iss": "cellar", "token_use": "access"},
        "s" * 40,
        algorithm="HS256",
    )
    assert service.verify(token).user_id == user_id
    assert service.verify(token).user_id == user_id  # served from the memo
    time.sleep(max(0.0, now + 1.2 - time.time()))
    with pytest.raises(TokenError):
        service.verify(token)
