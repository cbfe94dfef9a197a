"""Bodies of the user routes."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class Me(msgspec.Struct, frozen=True):
    id: UUID
    email: str | None
    external_id: str | None
    created_at: datetime
