"""Users: the statements over ``users``, the rows, one function each.

``IS_ACTIVE`` runs on every authenticated request: one statement asyncpg
prepares once per connection (docs/decisions.md, "Performance").
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import msgspec

from .rows import select_list

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg


class Me(msgspec.Struct, frozen=True):
    """A user's own account, which ``GET /me`` serves as it comes."""

    id: UUID
    email: Annotated[str | None, msgspec.Meta(description="Null for external-only accounts.")]
    external_id: Annotated[
        str | None, msgspec.Meta(description="The identity provider's subject, if any.")
    ]
    created_at: datetime


class Login(msgspec.Struct, frozen=True):
    """What a password login is checked against."""

    id: UUID
    password_hash: str | None
    is_active: bool


class ExternalUser(msgspec.Struct, frozen=True):
    """A user known by the external id of an identity provider (or a legacy owner)."""

    external_id: str
    id: UUID
    is_active: bool
    created: bool  # by the statement that returned it


class Owner(msgspec.Struct, frozen=True):
    """A user an operator names on the command line, by email or external id."""

    id: UUID
    email: str | None
    external_id: str | None


class UserIdentity(msgspec.Struct, frozen=True):
    """The columns the admin shows but may not change, as stored."""

    id: UUID
    external_id: str | None


IS_ACTIVE = "SELECT is_active FROM users WHERE id = $1"
ME = f"SELECT {select_list(Me, 'u')} FROM users u WHERE u.id = $1"
LOGIN = f"SELECT {select_list(Login, 'u')} FROM users u WHERE u.email = $1"
IDENTITY = f"SELECT {select_list(UserIdentity, 'u')} FROM users u WHERE u.id = $1"
# Any unique violation (the email is taken) inserts nothing.
REGISTER = (
    "INSERT INTO users (email, password_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id"
)
BY_EXTERNAL_ID = f"""
SELECT {select_list(ExternalUser, "u", created="false")}
  FROM users u WHERE u.external_id = ANY($1::text[])
"""
# The missing ones are created; a user created concurrently after this
# statement's snapshot is in neither half (read again with BY_EXTERNAL_ID).
ENSURE_EXTERNAL = f"""
WITH wanted AS (SELECT DISTINCT unnest($1::text[]) AS external_id),
     created AS (
        INSERT INTO users (external_id)
        SELECT external_id FROM wanted ORDER BY external_id
        ON CONFLICT (external_id) DO NOTHING
        RETURNING {select_list(ExternalUser, "users", created="true")}
     )
SELECT * FROM created
UNION ALL
SELECT {select_list(ExternalUser, "u", created="false")}
  FROM users u JOIN wanted w USING (external_id)
"""
OWNERS = f"""
SELECT {select_list(Owner, "u")} FROM users u
 WHERE u.email = lower($1) OR u.external_id = $1
 ORDER BY u.created_at
"""
EXTERNAL_ID_EXISTS = "SELECT EXISTS (SELECT 1 FROM users WHERE external_id = $1)"
# Only while the hash is still the one that was checked (a concurrent change wins).
REPLACE_PASSWORD_HASH = "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2"
MARK_PROVISIONED = (
    "UPDATE users SET provisioned_at = now() WHERE id = ANY($1::uuid[]) AND provisioned_at IS NULL"
)


async def is_active(conn: asyncpg.Connection, user_id: UUID) -> bool | None:
    """Whether the user is active; None when there is no such user."""
    value: bool | None = await conn.fetchval(IS_ACTIVE, user_id)
    return value


async def me(conn: asyncpg.Connection, user_id: UUID) -> Me | None:
    record = await conn.fetchrow(ME, user_id)
    return None if record is None else Me(*record)


async def login(conn: asyncpg.Connection, email: str) -> Login | None:
    record = await conn.fetchrow(LOGIN, email)
    return None if record is None else Login(*record)


async def register(conn: asyncpg.Connection, email: str, password_hash: str) -> UUID | None:
    """The new user's id; None when the email is taken."""
    value: UUID | None = await conn.fetchval(REGISTER, email, password_hash)
    return value


async def by_external_id(
    conn: asyncpg.Connection, external_ids: Sequence[str]
) -> list[ExternalUser]:
    return [ExternalUser(*r) for r in await conn.fetch(BY_EXTERNAL_ID, external_ids)]


async def ensure_external(
    conn: asyncpg.Connection, external_ids: Sequence[str]
) -> list[ExternalUser]:
    """The users of these external ids, creating those that are missing, in one statement."""
    return [ExternalUser(*r) for r in await conn.fetch(ENSURE_EXTERNAL, external_ids)]


async def external_id_exists(conn: asyncpg.Connection, external_id: str) -> bool:
    return bool(await conn.fetchval(EXTERNAL_ID_EXISTS, external_id))


async def replace_password_hash(
    conn: asyncpg.Connection, user_id: UUID, checked: str, stronger: str
) -> None:
    await conn.execute(REPLACE_PASSWORD_HASH, user_id, checked, stronger)


async def mark_provisioned(conn: asyncpg.Connection, user_ids: Sequence[UUID]) -> None:
    """Record that these users have their blank and demo notebooks (once)."""
    await conn.execute(MARK_PROVISIONED, user_ids)


async def identity(conn: asyncpg.Connection, user_id: UUID) -> UserIdentity | None:
    record = await conn.fetchrow(IDENTITY, user_id)
    return None if record is None else UserIdentity(*record)


async def owners(conn: asyncpg.Connection, email_or_external_id: str) -> list[Owner]:
    """The users whose email (in any case) or external id this is: none, one, or two."""
    return [Owner(*r) for r in await conn.fetch(OWNERS, email_or_external_id)]
