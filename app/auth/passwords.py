"""Password hashing with argon2id.

Pure functions around one module-level :class:`argon2.PasswordHasher`. The hasher is built
once at import time with argon2-cffi's defaults (the RFC 9106 "low memory" profile); when
those defaults are raised in a later release, :func:`needs_rehash` starts returning True for
older hashes so they can be upgraded transparently on the next successful login.
"""

import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "DUMMY_HASH",
    "dummy_verify",
    "hash_password",
    "needs_rehash",
    "verify_password",
]

_hasher: Final = PasswordHasher()


def hash_password(password: str) -> str:
    """Return an encoded argon2id hash (``$argon2id$...``) with a fresh random salt."""
    return _hasher.hash(password)


def verify_password(hash: str, password: str) -> bool:
    """Return True when *password* matches *hash*.

    Returns False (never raises) on a mismatch and on a stored value that is not a usable
    argon2 hash, so a corrupt or legacy row can only ever fail a login, not crash it.
    """
    try:
        return _hasher.verify(hash, password)
    except (VerificationError, InvalidHashError, ValueError):
        # VerifyMismatchError is a VerificationError; ValueError covers e.g. a hash that
        # is not ASCII and so cannot even be handed to the argon2 library.
        return False


def needs_rehash(hash: str) -> bool:
    """Return True when *hash* was made with parameters weaker than the current ones.

    Call it right after :func:`verify_password` succeeded, and if True store
    ``hash_password(password)`` instead. A value that cannot be parsed as an argon2 hash
    also reports True: it should be replaced.
    """
    try:
        return _hasher.check_needs_rehash(hash)
    except (InvalidHashError, ValueError):
        return True


DUMMY_HASH: Final[str] = hash_password(secrets.token_urlsafe(32))
"""A valid hash of a random, never-disclosed password, computed once at import time.

It exists only to be verified against by :func:`dummy_verify`; no password matches it in
practice.
"""


def dummy_verify(password: str) -> None:
    """Spend the same time as a real password check, for a login with an unknown email.

    A login handler that answers "no such user" immediately, but spends tens of milliseconds
    in argon2 when the user exists, lets anyone learn which emails have accounts just by
    timing the responses. Calling this on the unknown-email path (and then failing the login
    with the very same error as a wrong password) makes both paths cost one argon2 verify
    with the same parameters, so the response time does not reveal whether the email exists.
    """
    verify_password(DUMMY_HASH, password)
