"""Bearer tokens: issuing our own access tokens and verifying ours or an external IdP's.

Pure code (no database, no web framework). A :class:`TokenService` is built once at
start-up from settings and shared; :meth:`TokenService.verify` turns a bearer token into an
:class:`Identity` or raises :class:`TokenError`.

Two kinds of token are accepted:

* our own, HS256-signed with the server secret, ``iss="cellar"``, ``sub`` = ``users.id``;
* optionally, tokens of an external identity provider, RS256 or ES256, verified against a
  configured PEM public key or the provider's JWKS endpoint, with a pinned issuer and
  audience.

Why the algorithm is dispatched on the (unverified) header
    A token carries the name of the algorithm it claims to be signed with. Reading it
    before verification is unavoidable with two key families, and safe *only* because the
    header merely selects which of our own, fixed (key, algorithm) pairs to try: HS256 always
    goes to our secret, RS256/ES256 always go to the external public key, and any other
    value is rejected outright. The header can therefore choose between keys we trust for
    that purpose, but never the way a key is used.

Why the algorithms are pinned
    The classic JWT attacks are "alg confusion": a token with ``alg: none``, or an HS256
    token whose HMAC secret is the (public!) RSA/EC key, accepted by a verifier that trusts
    the header to say how to use a key. Every ``jwt.decode`` call below passes an explicit
    ``algorithms=[...]`` list holding exactly one algorithm, the one that matches the key
    being used (HS256 for the secret; RS256 for an RSA key, ES256 for a P-256 key), so
    whatever the header says, a key is only ever used with its own algorithm.
"""

import asyncio
import time
import uuid
from typing import Any, Final

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["OWN_ISSUER", "Identity", "TokenError", "TokenService"]

OWN_ISSUER: Final = "cellar"
_OWN_ALGORITHM: Final = "HS256"
_TOKEN_USE_ACCESS: Final = "access"
_EXTERNAL_ALGORITHMS: Final = frozenset({"RS256", "ES256"})

_MIN_SECRET_BYTES: Final = 32  # RFC 7518 §3.2: an HS256 key must be at least 256 bits.
_MIN_RSA_BITS: Final = 2048
_MAX_TOKEN_CHARS: Final = 16_384  # bound the work spent on obviously bogus input
_JWKS_FETCH_TIMEOUT_SECONDS: Final = 5.0
_JWKS_CACHE_SECONDS: Final = 300.0
_VERIFIED_CACHE_SIZE: Final = 4096  # tokens remembered as verified (then the memo starts over)


class TokenError(Exception):
    """The bearer token is not acceptable (malformed, expired, forged, wrong audience, ...).

    The message is short and generic so that it is safe to show to the client.
    """


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who a verified token speaks for. Exactly one of the two ids is set.

    ``user_id``: our own token, the ``users.id`` UUID as a string.
    ``external_subject``: an external IdP token, its ``sub`` claim (to be mapped to a user
    by the caller). ``expires_at``: the token's ``exp``, Unix seconds.
    """

    user_id: str | None = None
    external_subject: str | None = None
    expires_at: int

    def __post_init__(self) -> None:
        if (self.user_id is None) == (self.external_subject is None):
            raise ValueError("exactly one of user_id and external_subject must be set")


_PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _algorithm_for_key(key: object) -> str | None:
    """The one algorithm *key* may be used with, or None if we do not accept such a key."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256" if key.key_size >= _MIN_RSA_BITS else None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ES256" if isinstance(key.curve, ec.SECP256R1) else None
    return None


def _load_public_key(pem: str) -> tuple[_PublicKey, str]:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("external_public_key is not a PEM public key") from exc
    algorithm = _algorithm_for_key(key)
    if algorithm is None or not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError(
            f"external_public_key must be an RSA key of at least {_MIN_RSA_BITS} bits "
            "or an EC P-256 key"
        )
    return key, algorithm


class TokenService:
    """Issues and verifies bearer tokens. Build one at start-up and share it.

    ``verify`` is synchronous. With ``external_jwks_url`` it may block on an HTTP fetch (at
    most a few seconds, and only when the cached key set is stale or a new ``kid`` shows up);
    async callers that care can run it in a worker thread.
    """

    def __init__(
        self,
        *,
        secret_key: str,
        lifetime_seconds: int,
        external_issuer: str | None = None,
        external_audience: str | None = None,
        external_public_key: str | None = None,
        external_jwks_url: str | None = None,
        leeway_seconds: int = 10,
    ) -> None:
        if len(secret_key.encode()) < _MIN_SECRET_BYTES:
            raise ValueError(f"secret_key must be at least {_MIN_SECRET_BYTES} bytes")
        if lifetime_seconds <= 0:
            raise ValueError("lifetime_seconds must be positive")
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must not be negative")
        if external_public_key and external_jwks_url:
            raise ValueError("set external_public_key or external_jwks_url, not both")
        if (external_public_key or external_jwks_url) and not (
            external_issuer and external_audience
        ):
            raise ValueError(
                "external tokens need both external_issuer and external_audience to be configured"
            )

        self._secret = secret_key
        self._lifetime = lifetime_seconds
        self._leeway = leeway_seconds
        self._external_issuer = external_issuer
        self._external_audience = external_audience

        self._external_key: _PublicKey | None = None
        self._external_algorithm: str | None = None
        if external_public_key:
            self._external_key, self._external_algorithm = _load_public_key(external_public_key)

        # Tokens that passed ``verify``, by their exact text: a client sends the
        # same token on every request until it expires, and PyJWT's parsing and
        # checks cost more than the rest of the authentication (measured:
        # docs/decisions.md, "Performance").  An entry is used only while the
        # token's own ``exp`` (plus leeway) has not passed; the per-request
        # user lookup still catches deactivated users at once.
        self._verified: dict[str, Identity] = {}

        self._jwks_client: jwt.PyJWKClient | None = None
        if external_jwks_url:
            # Built once: the client caches the fetched key set (and rate-limits refetches
            # triggered by unknown key ids), which only helps if it lives as long as we do.
            try:
                self._jwks_client = jwt.PyJWKClient(
                    external_jwks_url,
                    cache_jwk_set=True,
                    lifespan=_JWKS_CACHE_SECONDS,
                    timeout=_JWKS_FETCH_TIMEOUT_SECONDS,
                )
            except jwt.PyJWKClientError as exc:
                raise ValueError(f"external_jwks_url is not usable: {exc}") from exc

    @property
    def external_enabled(self) -> bool:
        """Whether tokens of an external identity provider are accepted."""
        return self._external_key is not None or self._jwks_client is not None

    def issue(self, user_id: str) -> tuple[str, int]:
        """Issue an access token for *user_id* (a ``users.id`` UUID).

        Returns ``(token, expires_in_seconds)``.
        """
        subject = str(uuid.UUID(user_id))  # ValueError on a non-UUID: a caller bug
        now = int(time.time())
        claims = {
            "sub": subject,
            "iat": now,
            "exp": now + self._lifetime,
            "iss": OWN_ISSUER,
            "token_use": _TOKEN_USE_ACCESS,
        }
        token = jwt.encode(claims, self._secret, algorithm=_OWN_ALGORITHM)
        return token, self._lifetime

    def verify(self, token: str) -> Identity:
        """Verify *token* and say whom it is for; raise :class:`TokenError` if unacceptable.

        The header's ``alg`` only picks which of our configured keys to try (see the module
        docstring); the signature, expiry, issuer (and, for external tokens, the audience)
        are then checked with that key and its single algorithm.
        """
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            raise TokenError("malformed token")
        known = self._verified.get(token)
        if known is not None and time.time() < known.expires_at + self._leeway:
            return known
        identity = self._verify_uncached(token)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = identity
        return identity

    def _verify_uncached(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError):
            raise TokenError("malformed token") from None

        algorithm = header.get("alg")
        if algorithm == _OWN_ALGORITHM:
            return self._verify_own(token)
        if algorithm in _EXTERNAL_ALGORITHMS and self.external_enabled:
            return self._verify_external(token, str(algorithm))
        raise TokenError("unsupported token algorithm")

    async def verify_async(self, token: str) -> Identity:
        """``verify``, moved off the event loop when it may fetch the provider's JWKS.

        PyJWKClient fetches keys synchronously (up to its timeout) when its
        cache is cold or a new ``kid`` appears; our own HS256 tokens never do.
        """
        if self._jwks_client is None or _unverified_algorithm(token) == _OWN_ALGORITHM:
            return self.verify(token)
        return await asyncio.to_thread(self.verify, token)

    def _verify_own(self, token: str) -> Identity:
        claims = _decode(
            token,
            self._secret,
            algorithm=_OWN_ALGORITHM,
            issuer=OWN_ISSUER,
            audience=None,
            leeway=self._leeway,
            require=["exp", "iat", "sub", "iss"],
        )
        if claims.get("token_use") != _TOKEN_USE_ACCESS:
            raise TokenError("invalid token")
        try:
            user_id = str(uuid.UUID(claims["sub"]))
        except (ValueError, TypeError, AttributeError):
            raise TokenError("invalid token") from None
        return Identity(user_id=user_id, expires_at=int(claims["exp"]))

    def _verify_external(self, token: str, header_algorithm: str) -> Identity:
        key: Any
        if self._jwks_client is not None:
            try:
                jwk = self._jwks_client.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientConnectionError:
                raise TokenError("signing keys unavailable") from None
            except (jwt.PyJWTError, ValueError):
                # Unknown kid, missing kid, unusable or malformed key set, ...
                raise TokenError("unknown signing key") from None
            key = jwk.key
            algorithm = _algorithm_for_key(key)
            if algorithm is not None and jwk.algorithm_name != algorithm:
                # The JWK's own "alg" disagrees with its key type: do not guess.
                algorithm = None
        else:
            key = self._external_key
            algorithm = self._external_algorithm

        if algorithm is None or header_algorithm != algorithm:
            raise TokenError("unsupported token algorithm")

        claims = _decode(
            token,
            key,
            algorithm=algorithm,
            issuer=self._external_issuer,
            audience=self._external_audience,
            leeway=self._leeway,
            require=["exp", "sub", "iss", "aud"],
        )
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenError("invalid token")
        return Identity(external_subject=subject, expires_at=int(claims["exp"]))


def _unverified_algorithm(token: str) -> object:
    try:
        return jwt.get_unverified_header(token).get("alg")
    except (jwt.PyJWTError, ValueError, TypeError):
        return None


def _decode(
    token: str,
    key: Any,
    *,
    algorithm: str,
    issuer: str | None,
    audience: str | None,
    leeway: int,
    require: list[str],
) -> dict[str, Any]:
    """``jwt.decode`` with exactly one allowed algorithm, PyJWT errors mapped to TokenError."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": require},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except (jwt.PyJWTError, ValueError):
        raise TokenError("invalid token") from None
