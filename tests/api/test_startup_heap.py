"""Start-up leaves its objects out of later garbage collections (app.main)."""

from __future__ import annotations

import gc
from typing import Any


async def test_what_start_up_made_is_frozen(client: Any) -> None:
    # The session's app has started (the client fixture ran its start-up hooks).
    # Without the freeze every full collection walked the app's whole heap: 50 to
    # 130 ms with the event loop stopped, every few seconds under load.
    assert gc.get_freeze_count() > 10_000
    assert (await client.get("/health")).status_code == 200
