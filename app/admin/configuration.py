"""What each admin table shows, filters and orders by, and the admin app built from it.

Login attempts are limited per client address: 20 (right or wrong) in five
minutes, then that address waits five minutes (Piccolo's default blocks it
until the process restarts).  The session cookie is ``Secure`` when
``ADMIN_SECURE_COOKIES`` says the admin is served over HTTPS (Piccolo's
``production``); when it says plain HTTP, that is the operator's decision,
so Piccolo's warning about it on every login is not repeated.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from piccolo.apps.user.tables import BaseUser
from piccolo_admin.endpoints import TableConfig, create_admin
from piccolo_api.crud.endpoints import OrderBy
from piccolo_api.crud.hooks import Hook, HookType
from piccolo_api.rate_limiting.middleware import InMemoryLimitProvider
from piccolo_api.session_auth.tables import SessionsBase

from app.admin.entry import AdminEntry
from app.admin.forms import FORMS
from app.admin.guards import (
    no_create_or_replace,
    notebook_values,
    patch_guard,
    read_only,
    user_values,
)
from app.admin.tables import CellRunInAdmin, NotebookInAdmin, UserInAdmin

if TYPE_CHECKING:
    from piccolo.columns.base import Column
    from piccolo.table import Table

    from app.settings import Settings

ADMIN_PATH = "/admin"
SITE_NAME = "Cellar admin"
# Login attempts (right or wrong) per client address in a window, per process.
LOGIN_LIMIT = 20
LOGIN_WINDOW_SECONDS = 300
# Piccolo's warning on every login when the session cookie is not Secure.
_NOT_PRODUCTION = "If running sessions in production"


def _column(table: type[Table], name: str) -> Column:
    return table._meta.get_column_by_name(name)


def _columns(table: type[Table], *names: str) -> list[Column]:
    return [_column(table, name) for name in names]


def build_admin(settings: Settings) -> AdminEntry:
    """The admin ASGI app; call it once per app (it holds the login rate limiter)."""
    users, notebooks, runs = UserInAdmin, NotebookInAdmin, CellRunInAdmin
    if not settings.admin_secure_cookies:
        warnings.filterwarnings("ignore", message=_NOT_PRODUCTION, category=UserWarning)
    admin = create_admin(
        tables=[
            TableConfig(
                users,
                visible_columns=_columns(users, "id", "email", "external_id", "is_active",
                                         "provisioned_at", "created_at"),
                visible_filters=_columns(users, "email", "external_id", "is_active",
                                         "created_at"),
                order_by=[OrderBy(_column(users, "created_at"), ascending=False)],
                hooks=[Hook(HookType.pre_patch, patch_guard(users, user_values))],
                validators=no_create_or_replace("users"),
                menu_group="Cellar",
            ),
            TableConfig(
                notebooks,
                visible_columns=_columns(notebooks, "id", "name", "user_id", "kind", "revision",
                                         "updated_at", "deleted_at"),
                visible_filters=_columns(notebooks, "name", "user_id", "kind", "revision",
                                         "updated_at", "deleted_at"),
                order_by=[OrderBy(_column(notebooks, "updated_at"), ascending=False)],
                hooks=[Hook(HookType.pre_patch,
                            patch_guard(notebooks, notebook_values(settings)))],
                validators=no_create_or_replace("notebooks"),
                menu_group="Cellar",
            ),
            TableConfig(
                runs,
                visible_columns=_columns(runs, "id", "notebook_id", "cell_id", "status",
                                         "updated_at"),
                visible_filters=_columns(runs, "notebook_id", "cell_id", "status"),
                order_by=[OrderBy(_column(runs, "updated_at"), ascending=False)],
                validators=read_only("cell_runs", "the execution engine writes it"),
                menu_group="Cellar",
            ),
            TableConfig(
                BaseUser,
                visible_columns=[BaseUser.id, BaseUser.username, BaseUser.email,
                                 BaseUser.active, BaseUser.admin, BaseUser.superuser,
                                 BaseUser.last_login],
                menu_group="Admin accounts",
            ),
        ],
        forms=FORMS,
        auth_table=BaseUser,
        session_table=SessionsBase,
        production=settings.admin_secure_cookies,
        allowed_hosts=list(settings.admin_allowed_hosts),
        site_name=SITE_NAME,
        rate_limit_provider=InMemoryLimitProvider(
            limit=LOGIN_LIMIT, timespan=LOGIN_WINDOW_SECONDS, block_duration=LOGIN_WINDOW_SECONDS
        ),
        auto_include_related=False,
    )  # fmt: skip
    return AdminEntry(admin)
