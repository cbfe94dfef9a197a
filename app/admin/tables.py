"""The admin's twins of our tables: columns named as in the database, secrets left out.

Piccolo admin breaks on a column whose attribute name is not its database
name (``Notebook.user`` is ``user_id``): its schema and forms say
``user_id``, which its update path and filters cannot map back (every save
of a notebook fails with "Unrecognised keys", an owner filter finds
nothing, the list page fails to render).  A twin maps the same table with
``user_id`` as the attribute.  It also leaves secret columns out: Piccolo
admin would show them as empty fields (which reads as "not set") and accept
a value typed there.  Foreign keys point at the twins, so a row's
"referencing tables" links stay among them.  The twins belong to no Piccolo
app: migrations never see them.
"""

from __future__ import annotations

from typing import Any

from piccolo.columns import ForeignKey
from piccolo.table import Table, create_table_class

from app.notebooks.tables import CellRun, Notebook
from app.users.tables import User


def _as_in_database(tables: list[type[Table]]) -> dict[type[Table], type[Table]]:
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
