"""``GET /me`` (SPEC §2)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from app.auth.guards import AuthUser
from app.system.openapi import BEARER, error_responses
from app.users.schemas import Me
from app.users.services import UserService


class MeController(Controller):
    path = "/me"
    tags = ["users"]
    security = BEARER

    @get(operation_id="getMe", summary="Your account", responses=error_responses(401))
    async def me(
        self, current_user: NamedDependency[AuthUser], users: NamedDependency[UserService]
    ) -> Me:
        """The caller's own account."""
        return await users.me(current_user.id)
