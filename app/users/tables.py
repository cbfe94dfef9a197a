"""The ``users`` table (SPEC §1): people who own notebooks, by password or external identity."""

from datetime import UTC, datetime

from piccolo.columns import UUID, Boolean, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.readable import Readable
from piccolo.table import Table


class User(Table, tablename="users"):
    id = UUID(primary_key=True)
    external_id = Varchar(
        length=255,
        null=True,
        default=None,
        unique=True,
        help_text="Subject (sub) of an external identity provider's token; read-only in the admin.",
    )
    email = Varchar(
        length=320,
        null=True,
        default=None,
        unique=True,
        help_text="Stored lower-case; editable in the admin.",
    )
    password_hash = Text(null=True, default=None, secret=True, help_text="argon2 hash.")
    is_active = Boolean(
        default=True, help_text="An inactive user gets 401 from the API; editable in the admin."
    )
    provisioned_at = Timestamptz(
        null=True,
        default=None,
        help_text="When the blank and demo notebooks were created (first notebook list).",
    )
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), auto_update=lambda: datetime.now(tz=UTC))

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s", columns=[cls.email])
