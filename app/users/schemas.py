"""Bodies of the user routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec


class Me(msgspec.Struct, frozen=True):
    id: UUID
    email: Annotated[str | None, msgspec.Meta(description="Null for external-only accounts.")]
    external_id: Annotated[
        str | None, msgspec.Meta(description="The identity provider's subject, if any.")
    ]
    created_at: datetime
