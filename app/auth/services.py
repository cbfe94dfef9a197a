"""Credentials and token identity: who a password or a bearer token speaks for.

The one owner of both: registration and password login (argon2, off the
event loop) and mapping a verified token (``app.auth.tokens``) to an active
user row, creating users of an external identity provider on first sight.
The statements are the users store's; ``GET /me`` is the users service's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from uuid import UUID

from app.auth.passwords import dummy_verify, hash_password, needs_rehash, verify_password
from app.auth.schemas import MIN_PASSWORD_LENGTH
from app.database import connection
from app.errors import Duplicate, InvalidInput, Unauthorized
from app.store import users
from app.users.services import normalise_email

if TYPE_CHECKING:
    from app.auth.tokens import Identity

BAD_CREDENTIALS = "incorrect email or password"
MAX_SUBJECT_LENGTH = 255  # users.external_id


class AuthService:
    async def register(self, email: str, password: str) -> tuple[UUID, str]:
        address = normalise_email(email)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(
                "password", f"must be at least {MIN_PASSWORD_LENGTH} characters long"
            )
        # argon2 is deliberately slow: keep it off the event loop.
        password_hash = await asyncio.to_thread(hash_password, password)
        async with connection() as conn:
            user_id = await users.register(conn, address, password_hash)
        if user_id is None:
            raise Duplicate("email: already registered")
        return user_id, address

    async def authenticate(self, email: str, password: str) -> UUID:
        """One message for an unknown email and a wrong password alike, in similar time.

        A hash made with weaker argon2 parameters than today's is replaced on
        the next successful login (``needs_rehash``).
        """
        async with connection() as conn:
            login = await users.login(conn, email.strip().lower())
        if login is None or login.password_hash is None:
            await asyncio.to_thread(dummy_verify, password)
            raise Unauthorized(BAD_CREDENTIALS)
        valid = await asyncio.to_thread(verify_password, login.password_hash, password)
        if not valid or not login.is_active:
            raise Unauthorized(BAD_CREDENTIALS)
        if needs_rehash(login.password_hash):
            stronger = await asyncio.to_thread(hash_password, password)
            async with connection() as conn:
                await users.replace_password_hash(conn, login.id, login.password_hash, stronger)
        return login.id

    async def resolve(self, identity: Identity) -> UUID:
        """The active user a token speaks for; external subjects are created on first sight."""
        if identity.user_id is not None:
            try:
                user_id = UUID(identity.user_id)
            except ValueError:
                raise Unauthorized("invalid token subject") from None
            # Every request comes here: one prepared statement (docs/decisions.md).
            async with connection() as conn:
                active = await users.is_active(conn, user_id)
            if not active:
                raise Unauthorized("unknown or inactive user")
            return user_id
        subject = identity.external_subject
        if not subject or len(subject) > MAX_SUBJECT_LENGTH:
            raise Unauthorized("invalid token subject")
        async with connection() as conn:
            found = await users.by_external_id(conn, [subject])
            if not found:
                found = await users.ensure_external(conn, [subject])
            if not found:  # created by a concurrent request after that statement began
                found = await users.by_external_id(conn, [subject])
        if not found or not found[0].is_active:
            raise Unauthorized("unknown or inactive user")
        return found[0].id
