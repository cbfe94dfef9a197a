"""The Piccolo admin dashboard at ``/admin/`` (SPEC §7), built once at start-up.

``build_admin(settings)`` makes the one admin ASGI app of an app;
``create_app`` mounts it with Litestar's ``asgi(path="/admin", is_mount=True)``.
The admin queries through Piccolo tables, so it uses the process's one engine
(``piccolo_conf.DB``) and the pool the app's lifespan starts: no second pool,
no second process.

Authentication is Piccolo's own: a session cookie from the admin's login
(``piccolo_user`` accounts made by ``cellar create-admin`` or ``piccolo user
create``), double-submit CSRF tokens on every unsafe request, and a login rate
limiter that lives as long as the app because the admin is built once.  The
REST API's bearer tokens mean nothing here and the admin's session cookie means
nothing to the REST API.

What the admin may change (``EDITABLE``; everything else is read-only there):

- ``users``: ``email`` (normalised like registration; empty clears it) and
  ``is_active``.  Rows may be deleted (their notebooks go with them), not
  created: people register through the API or come from the identity provider.
- ``notebooks``: ``name``, within the API's limits; the database then raises
  ``revision`` and ``updated_at`` (the revision trigger migration).  Rows may
  be deleted, not created.  ``cells`` are readable, never editable (reads and
  writes are the server's analysis).
- Secret columns (``notebooks.db_conn_string``, stored encrypted and set by
  ``PUT /notebooks/{id}/db``; ``users.password_hash``) are not part of the
  admin's tables at all: never shown, not even as a token, never written.
- ``cell_runs``: read-only, the execution engine writes it.
- ``piccolo_user``: the admin accounts, under Piccolo's superuser rules.

Piccolo admin has no per-column read-only switch and its edit form sends
every field back, so a ``pre_patch`` hook decides: editable fields pass;
what the database keeps (timestamps, ``revision``) is ignored, since the form
holds stale copies after its first save; other read-only fields sent back
unchanged are dropped; a read-only field with another value refuses the whole
save with a 422 naming it.  Creating rows, and PUT (which skips hooks), are
refused by validators.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from piccolo.apps.user.tables import BaseUser
from piccolo.columns import JSON, ForeignKey, Timestamp, Timestamptz
from piccolo.table import create_table_class
from piccolo_admin.endpoints import TableConfig, create_admin
from piccolo_api.crud.endpoints import OrderBy
from piccolo_api.crud.hooks import Hook, HookType
from piccolo_api.crud.validators import Validators
from piccolo_api.rate_limiting.middleware import InMemoryLimitProvider
from piccolo_api.session_auth.middleware import SessionsAuthBackend
from piccolo_api.session_auth.tables import SessionsBase
from starlette.authentication import AuthenticationError
from starlette.requests import HTTPConnection

from app.errors import InvalidInput
from app.notebooks.tables import CellRun, Notebook
from app.users.services import normalise_email
from app.users.tables import User

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from piccolo.columns.base import Column
    from piccolo.table import Table
    from piccolo_api.crud.endpoints import PiccoloCRUD
    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

    from app.settings import Settings

ADMIN_PATH = "/admin"
SITE_NAME = "Cellar admin"
# /admin/login: where a visitor without an admin session is sent (see AdminEntry).
LOGIN = "login"
# Login attempts (right or wrong) per client address in a window, per process.
LOGIN_LIMIT = 20
LOGIN_WINDOW_SECONDS = 300

EDITABLE: dict[str, frozenset[str]] = {
    "users": frozenset({"email", "is_active"}),
    "notebooks": frozenset({"name"}),
}
# Kept by the database, and stale in the admin's form as soon as it saves (the
# form is not reloaded): whatever the form sends for these is ignored, as it is
# for every timestamp.
MANAGED: dict[str, frozenset[str]] = {
    "users": frozenset(),
    "notebooks": frozenset({"revision"}),
}


def _as_in_database(tables: list[type[Table]]) -> dict[type[Table], type[Table]]:
    """Twins of ``tables`` for the admin: columns named as in the database, no secrets.

    Piccolo admin breaks on a column whose attribute name is not its database
    name (``Notebook.user`` is ``user_id``): its schema and forms say
    ``user_id``, which its update path and filters cannot map back (every save
    of a notebook fails with "Unrecognised keys", an owner filter finds
    nothing, the list page fails to render).  A twin maps the same table with
    ``user_id`` as the attribute.  It also leaves secret columns out: Piccolo
    admin would show them as empty fields (which reads as "not set") and
    accept a value typed there.  Foreign keys point at the twins, so a row's
    "referencing tables" links stay among them.  The twins belong to no
    Piccolo app: migrations never see them.
    """
    twins: dict[type[Table], type[Table]] = {}
    for table in tables:
        members: dict[str, Any] = {}
        for column in table._meta.columns:
            if column._meta.secret:
                continue
            params = dict(column._meta.params)
            params.update(
                db_column_name=None,
                help_text=column._meta.help_text,
                required=column._meta.required,
                auto_update=column._meta.auto_update,
            )
            if isinstance(column, ForeignKey):
                target = column._foreign_key_meta.resolved_references
                params["references"] = twins.get(target, target)
            members[column._meta.db_column_name] = type(column)(**params)
        readable = getattr(table.get_readable, "__func__", None)
        if readable is not None:
            members["get_readable"] = classmethod(readable)
        twins[table] = create_table_class(
            class_name=f"{table.__name__}InAdmin",
            class_kwargs={"tablename": table._meta.tablename},
            class_members=members,
        )
    return twins


_TWINS = _as_in_database([User, Notebook, CellRun])
UserInAdmin, NotebookInAdmin, CellRunInAdmin = (_TWINS[t] for t in (User, Notebook, CellRun))


def _column(table: type[Table], name: str) -> Column:
    return table._meta.get_column_by_name(name)


def _columns(table: type[Table], *names: str) -> list[Column]:
    return [_column(table, name) for name in names]


def build_admin(settings: Settings) -> AdminEntry:
    """The admin ASGI app; call it once per app (it holds the login rate limiter)."""
    users, notebooks, runs = UserInAdmin, NotebookInAdmin, CellRunInAdmin
    admin = create_admin(
        tables=[
            TableConfig(
                users,
                visible_columns=_columns(users, "id", "email", "external_id", "is_active",
                                         "provisioned_at", "created_at"),
                visible_filters=_columns(users, "email", "external_id", "is_active",
                                         "created_at"),
                order_by=[OrderBy(_column(users, "created_at"), ascending=False)],
                hooks=[Hook(HookType.pre_patch, _patch_guard(users, _user_values))],
                validators=_no_create_or_replace("users"),
                menu_group="Cellar",
            ),
            TableConfig(
                notebooks,
                visible_columns=_columns(notebooks, "id", "name", "user_id", "kind", "revision",
                                         "updated_at"),
                visible_filters=_columns(notebooks, "name", "user_id", "kind", "revision",
                                         "updated_at"),
                order_by=[OrderBy(_column(notebooks, "updated_at"), ascending=False)],
                hooks=[Hook(HookType.pre_patch,
                            _patch_guard(notebooks, _notebook_values(settings)))],
                validators=_no_create_or_replace("notebooks"),
                menu_group="Cellar",
            ),
            TableConfig(
                runs,
                visible_columns=_columns(runs, "id", "notebook_id", "cell_id", "status",
                                         "updated_at"),
                visible_filters=_columns(runs, "notebook_id", "cell_id", "status"),
                order_by=[OrderBy(_column(runs, "updated_at"), ascending=False)],
                validators=_read_only("cell_runs", "the execution engine writes it"),
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
        auth_table=BaseUser,
        session_table=SessionsBase,
        production=settings.admin_secure_cookies,
        allowed_hosts=list(settings.admin_allowed_hosts),
        site_name=SITE_NAME,
        # Piccolo's default limiter blocks a client address until restart once it has
        # sent 20 logins in 5 minutes; here the block ends after 5 minutes.
        rate_limit_provider=InMemoryLimitProvider(
            limit=LOGIN_LIMIT, timespan=LOGIN_WINDOW_SECONDS, block_duration=LOGIN_WINDOW_SECONDS
        ),
        auto_include_related=False,
    )  # fmt: skip
    return AdminEntry(admin)


class AdminEntry:
    """The mounted app: Piccolo admin, behind a server-side login redirect.

    Piccolo admin serves its single-page app at ``/admin/`` to anyone and lets
    the page find out from a 401 of its API that it must show its login.  Here
    a visitor without a live admin session is sent to ``/admin/login`` (303)
    before any page loads, and ``/admin/login`` sends a logged-in admin back to
    ``/admin/`` (the page's own ``#/…`` route survives both redirects).
    ``/admin/login`` serves the same page: without a trailing slash its relative
    asset and API URLs still resolve under ``/admin/``.  Locations are relative,
    so the admin also works behind a path prefix.
    """

    def __init__(self, admin: ASGIApp) -> None:
        self.admin = admin
        self.sessions = SessionsAuthBackend(
            auth_table=BaseUser, session_table=SessionsBase, admin_only=True, active_only=True
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.admin(scope, receive, send)
            return
        # Litestar hands a mounted app the rest of the path, always ending in "/";
        # the raw path tells "/admin" from "/admin/" and "/admin/login" from ".../login/".
        path: str = scope["path"]
        raw = scope.get("raw_path", b"").decode("latin-1") or path
        if path == "/":
            if not raw.endswith("/"):
                await _redirect(scope, send, f"{raw.rsplit('/', 1)[-1]}/", status=308)
            elif not await self._has_session(scope):
                await _redirect(scope, send, LOGIN)
            else:
                await self.admin(scope, receive, send)
        elif path == f"/{LOGIN}/":
            if raw.endswith("/"):
                await _redirect(scope, send, f"../{LOGIN}", status=308)
            elif await self._has_session(scope):
                await _redirect(scope, send, "./")
            else:
                await self.admin({**scope, "path": "/", "raw_path": b"/"}, receive, send)
        else:
            await self.admin(scope, receive, send)

    async def _has_session(self, scope: Scope) -> bool:
        """A live session of an active admin, checked exactly as the admin's API checks it."""
        try:
            return await self.sessions.authenticate(HTTPConnection(scope)) is not None
        except AuthenticationError:
            return False


async def _redirect(scope: Scope, send: Send, location: str, status: int = 303) -> None:
    query: bytes = scope.get("query_string", b"")
    target = f"{location}?{query.decode('latin-1')}" if query else location
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"location", target.encode("latin-1")),
                (b"content-length", b"0"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


# -- what the admin may change ---------------------------------------------------


def _user_values(values: dict[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    if "email" in values:
        email = values["email"]
        if email is None or not str(email).strip():
            checked["email"] = None
        else:
            try:
                checked["email"] = normalise_email(str(email))
            except InvalidInput as exc:
                raise _unprocessable("email", exc.detail.removeprefix("email: ")) from None
    if "is_active" in values:
        checked["is_active"] = bool(values["is_active"])
    return checked


def _notebook_values(settings: Settings) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(values: dict[str, Any]) -> dict[str, Any]:
        if "name" not in values:
            return {}
        name = values["name"]
        if name is None or name == "":
            return {"name": None}
        if len(name) > settings.max_name_length:
            raise _unprocessable("name", f"longer than {settings.max_name_length} characters")
        if "\x00" in name:
            raise _unprocessable("name", "contains a NUL character")
        return {"name": name}

    return check


def _patch_guard(
    table: type[Table], check: Callable[[dict[str, Any]], dict[str, Any]]
) -> Callable[..., Awaitable[dict[Column, Any]]]:
    """A ``pre_patch`` hook: editable fields pass, unchanged read-only ones go, others refuse."""
    editable = EDITABLE[table._meta.tablename]
    managed = MANAGED[table._meta.tablename]
    primary_key = table._meta.primary_key

    async def pre_patch(row_id: Any, values: dict[Column, Any]) -> dict[Column, Any]:
        sent = {column._meta.name: value for column, value in values.items()}
        compare: list[Column] = []
        for column in values:
            name = column._meta.name
            if name in editable or name in managed or isinstance(column, Timestamp | Timestamptz):
                continue
            compare.append(column)
        if compare:
            stored = await table.select(*compare).where(primary_key == row_id).first()
            if stored is None:
                raise HTTPException(status_code=404, detail="The resource doesn't exist.")
            for column in compare:
                name = column._meta.name
                if not _same(column, stored[name], sent[name]):
                    raise _unprocessable(
                        name, "read-only in the admin (or changed since this page was loaded)"
                    )
        checked = check({name: value for name, value in sent.items() if name in editable})
        if not checked:
            # Nothing editable was sent (say, a bulk update that sets a read-only
            # column to the value it has): Piccolo cannot run an UPDATE without
            # values, so set the key to itself, which changes nothing.
            return {primary_key: row_id}
        return {table._meta.get_column_by_name(name): value for name, value in checked.items()}

    return pre_patch


def _same(column: Column, stored: Any, sent: Any) -> bool:
    """Whether the form sent back the stored value (JSON compared as data, keys as text)."""
    if stored is None or sent is None:
        return stored is None and sent is None
    if isinstance(column, JSON):  # JSONB too
        try:
            return bool(_json(stored) == _json(sent))
        except ValueError:
            return False
    if isinstance(column, ForeignKey) or column._meta.primary_key:
        return str(stored) == str(sent)
    return bool(stored == sent)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _unprocessable(field: str, message: str) -> HTTPException:
    """A 422 shaped like a validation error: the admin's form shows it with the field."""
    return HTTPException(
        status_code=422,
        detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )


def _refuse(message: str) -> Callable[..., None]:
    # Piccolo calls validators with these keyword names.
    def validator(piccolo_crud: PiccoloCRUD, request: Request) -> None:
        raise HTTPException(status_code=405, detail=message)

    return validator


def _no_create_or_replace(table: str) -> Validators:
    return Validators(
        post_single=[_refuse(f"{table}: rows are not created in the admin")],
        put_single=[_refuse(f"{table}: change single fields instead (PATCH)")],
    )


def _read_only(table: str, why: str) -> Validators:
    refuse = _refuse(f"{table} is read-only in the admin: {why}")
    return Validators(
        post_single=[refuse],
        put_single=[refuse],
        patch_single=[refuse],
        delete_single=[refuse],
        delete_all=[refuse],
    )
