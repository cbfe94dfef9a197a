"""Liveness of the database, answered within a deadline."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from piccolo.engine.postgres import PostgresEngine


class HealthService:
    def __init__(self, engine: PostgresEngine, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout

    async def database_reachable(self) -> bool:
        """``SELECT 1`` through the pool, bounded so ``/health`` never hangs.

        asyncpg's pool replaces connections that died while the server was
        down, so the first check after it returns succeeds by itself.
        """
        pool = self.engine.pool
        if pool is None:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                async with pool.acquire() as connection:
                    await connection.fetchval("SELECT 1")
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True
