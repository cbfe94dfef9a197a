"""Bodies of the authentication routes (SPEC §2)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern="^[^\x00]*$")]
# Over 1 KiB is no password anyone types; the cap keeps argon2 from being fed megabytes.
Password = Annotated[str, msgspec.Meta(max_length=1024)]


class Credentials(msgspec.Struct, frozen=True):
    email: Email
    password: Password


class Registered(msgspec.Struct, frozen=True):
    id: UUID
    email: str


class AccessToken(msgspec.Struct, frozen=True):
    access_token: str
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"
