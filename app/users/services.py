"""Users as they see themselves (``GET /me``), and the rule for their email addresses.

Credentials and token identity belong to ``app.auth.services``; the
statements to the users store (``app.store.users``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from app.database import connection
from app.errors import InvalidInput, Unauthorized
from app.store import users

if TYPE_CHECKING:
    from uuid import UUID

    from app.users.schemas import Me

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    """Emails are stored lower-case (SPEC §1), so comparisons are exact."""
    value = email.strip().lower()
    if not _EMAIL.match(value):
        raise InvalidInput("email", "expected an email address")
    return value


class UserService:
    async def me(self, user_id: UUID) -> Me:
        async with connection() as conn:
            me = await users.me(conn, user_id)
        if me is None:
            raise Unauthorized("unknown or inactive user")
        return me
