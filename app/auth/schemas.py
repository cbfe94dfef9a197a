"""Bodies of the authentication routes (SPEC §2)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec

MIN_PASSWORD_LENGTH = 8
# Over 1 KiB is no password anyone types; the cap keeps argon2 from being fed megabytes.
MAX_PASSWORD_LENGTH = 1024

Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=320,
        pattern="^[^\x00]*$",
        description="An email address; stored lower-case, so any case logs in.",
        examples=["ada@example.com"],
    ),
]
Password = Annotated[
    str, msgspec.Meta(max_length=MAX_PASSWORD_LENGTH, description="The account's password.")
]
NewPassword = Annotated[
    str,
    msgspec.Meta(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        description=f"At least {MIN_PASSWORD_LENGTH} characters; stored as an argon2 hash.",
        examples=["correct horse battery"],
    ),
]


class Registration(msgspec.Struct, frozen=True):
    email: Email
    password: NewPassword


class Credentials(msgspec.Struct, frozen=True):
    email: Email
    password: Password


class Registered(msgspec.Struct, frozen=True):
    id: Annotated[UUID, msgspec.Meta(description="The new user's id.")]
    email: Annotated[str, msgspec.Meta(description="The email as stored (lower-case).")]


class AccessToken(msgspec.Struct, frozen=True):
    access_token: Annotated[
        str, msgspec.Meta(description="Send it as `Authorization: Bearer <access_token>`.")
    ]
    expires_in: Annotated[int, msgspec.Meta(description="Seconds until the token expires.")]
    token_type: Literal["Bearer"] = "Bearer"
