"""What the admin may change (``EDITABLE``); everything else is read-only there.

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
unchanged are dropped (compared with the row as the store reads it); a
read-only field with another value refuses the whole save with a 422 naming
it.  Creating rows, and PUT (which skips hooks), are refused by validators.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from uuid import UUID

from fastapi import HTTPException
from piccolo.columns import JSON, ForeignKey, Timestamp, Timestamptz
from piccolo_api.crud.validators import Validators

from app.database import connection
from app.errors import InvalidInput
from app.store import notebooks, users
from app.users.services import normalise_email

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import asyncpg
    import msgspec
    from piccolo.columns.base import Column
    from piccolo.table import Table
    from piccolo_api.crud.endpoints import PiccoloCRUD
    from starlette.requests import Request

    from app.settings import Settings

EDITABLE: dict[str, frozenset[str]] = {
    "users": frozenset({"email", "is_active"}),
    "notebooks": frozenset({"name"}),
}
# Kept by the database, and stale in the admin's form as soon as it saves (the
# form is not reloaded): whatever the form sends for these is ignored, as it is
# for every timestamp.
MANAGED: dict[str, frozenset[str]] = {
    "users": frozenset(),
    "notebooks": frozenset({"revision", "seq"}),
}


async def _user_identity(conn: asyncpg.Connection, row_id: Any) -> msgspec.Struct | None:
    try:
        user_id = UUID(str(row_id))
    except ValueError:
        return None
    return await users.identity(conn, user_id)


async def _notebook_identity(conn: asyncpg.Connection, row_id: Any) -> msgspec.Struct | None:
    return await notebooks.identity(conn, str(row_id))


# The store's row of what each table shows but the admin may not change.
_IDENTITIES: dict[
    str, tuple[type[msgspec.Struct], Callable[[asyncpg.Connection, Any], Awaitable[Any]]]
] = {
    "users": (users.UserIdentity, _user_identity),
    "notebooks": (notebooks.NotebookIdentity, _notebook_identity),
}


def user_values(values: dict[str, Any]) -> dict[str, Any]:
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


def notebook_values(settings: Settings) -> Callable[[dict[str, Any]], dict[str, Any]]:
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


def _kept(column: Column, editable: frozenset[str], managed: frozenset[str]) -> bool:
    """A column the admin shows, may not change, and does not ignore."""
    name = column._meta.name
    return not (name in editable or name in managed or isinstance(column, Timestamp | Timestamptz))


def patch_guard(
    table: type[Table], check: Callable[[dict[str, Any]], dict[str, Any]]
) -> Callable[..., Awaitable[dict[Column, Any]]]:
    """A ``pre_patch`` hook: editable fields pass, unchanged read-only ones go, others refuse."""
    tablename = table._meta.tablename
    editable, managed = EDITABLE[tablename], MANAGED[tablename]
    row, read = _IDENTITIES[tablename]
    kept = {c._meta.name for c in table._meta.columns if _kept(c, editable, managed)}
    if kept != set(row.__struct_fields__):
        raise RuntimeError(
            f"{tablename}: the admin's read-only columns {sorted(kept)} are not the store's "
            f"{row.__name__} {sorted(row.__struct_fields__)}"
        )
    primary_key = table._meta.primary_key

    async def pre_patch(row_id: Any, values: dict[Column, Any]) -> dict[Column, Any]:
        sent = {column._meta.name: value for column, value in values.items()}
        compare = [column for column in values if column._meta.name in kept]
        if compare:
            async with connection() as conn:
                stored = await read(conn, row_id)
            if stored is None:
                raise HTTPException(status_code=404, detail="The resource doesn't exist.")
            for column in compare:
                name = column._meta.name
                if not _same(column, getattr(stored, name), sent[name]):
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


def no_create_or_replace(table: str) -> Validators:
    return Validators(
        post_single=[_refuse(f"{table}: rows are not created in the admin")],
        put_single=[_refuse(f"{table}: change single fields instead (PATCH)")],
    )


def read_only(table: str, why: str) -> Validators:
    refuse = _refuse(f"{table} is read-only in the admin: {why}")
    return Validators(
        post_single=[refuse],
        put_single=[refuse],
        patch_single=[refuse],
        delete_single=[refuse],
        delete_all=[refuse],
    )
