"""The admin's forms: actions that are no edit of a row (SPEC §13).

- "Restore a notebook from the trash": the notebooks table shows trashed
  notebooks (filter on ``deleted_at``: "is not null"); this form brings one
  back by id, as the owner's ``POST /notebooks/{id}/restore`` would (one more
  revision, event ``untrash``), recording ``admin`` as the event's actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from piccolo_admin.endpoints import FormConfig
from pydantic import BaseModel, Field

from app.database import connection
from app.store import notebooks

if TYPE_CHECKING:
    from starlette.requests import Request


class RestoreFromTrash(BaseModel):
    notebook_id: str = Field(
        min_length=1,
        max_length=255,
        description="The id of a notebook in the trash (notebooks filtered on deleted_at).",
    )


async def restore_from_trash(request: Request, data: RestoreFromTrash) -> str:
    """Bring the notebook back; a ValueError's message is what the admin's form shows."""
    notebook_id = data.notebook_id.strip()
    if "\x00" in notebook_id:
        raise ValueError("no such notebook in the trash")
    async with connection() as conn:
        changed = await notebooks.restore_by_admin(conn, notebook_id)
    if changed is None:
        raise ValueError(f"no notebook {notebook_id!r} in the trash (restored or purged?)")
    return f"Notebook {notebook_id} is back from the trash (revision {changed.revision})."


FORMS = [
    FormConfig(
        name="Restore a notebook from the trash",
        pydantic_model=RestoreFromTrash,
        endpoint=restore_from_trash,
        description="Brings a trashed notebook back as it was, for its owner. Find it in "
        "Notebooks with the filter deleted_at: is not null.",
        form_group="Cellar",
    )
]
