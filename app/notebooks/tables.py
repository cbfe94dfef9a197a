"""The ``notebooks`` table and the run state of their cells (SPEC §1, §9).

A notebook's ordered cells (code, reads, writes, metadata) are one JSONB
document: small, indexed (GIN ``jsonb_path_ops`` for type/writes filters, a
generated tsvector and trigrams for search) and edited in place with jsonb
functions.  Run state (status, stdout, outputs, error) lives in ``cell_runs``,
one row per cell, as ``json`` text PostgreSQL never has to parse on the way
out: editing one cell's code never rewrites megabytes of outputs, and writing
outputs never rewrites the code document.  Constraints and indexes Piccolo
cannot express (partial unique index, CHECKs, GIN operator classes, the
generated search column) are raw steps in ``piccolo_migrations``.
"""

from enum import StrEnum

from piccolo.columns import JSON, JSONB, BigInt, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.readable import Readable
from piccolo.table import Table

from app.users.tables import User


class NotebookKind(StrEnum):
    user = "user"
    blank = "blank"
    demo = "demo"


class Notebook(Table, tablename="notebooks"):
    id = Varchar(length=255, primary_key=True, help_text="UUID text, or a legacy id.")
    user = ForeignKey(
        references=User,
        on_delete=OnDelete.cascade,
        null=False,
        db_column_name="user_id",
    )
    name = Varchar(
        length=255,
        null=True,
        default=None,
        help_text="Editable in the admin; saving a new name raises the revision.",
    )
    kind = Varchar(
        length=8,
        default=NotebookKind.user.value,
        choices=NotebookKind,
        help_text="Set by the server (one blank and one demo per user); read-only in the admin.",
    )
    db_conn_string = Text(
        null=True,
        default=None,
        secret=True,
        help_text="Stored Fernet-encrypted; left out of the admin (never shown or set there).",
    )
    revision = BigInt(
        default=0,
        help_text="Raised by one on every change of name, cells or connection string "
        "(by the database for the admin's edits); read-only in the admin.",
    )
    seq = BigInt(
        default=0,
        help_text="The seq of the notebook's last event (notebook_events, SPEC §11); raised "
        "with every change, by the database for the admin's edits; read-only in the admin.",
    )
    cells = JSONB(
        default=[],
        help_text="Ordered cells: id, type, code, reads, writes, metadata; read-only in the admin.",
    )
    demo_version = Integer(null=True, default=None, help_text="Demo template version copied.")
    ipynb = JSON(
        null=True,
        default=None,
        help_text="An imported .ipynb's notebook metadata, nbformat_minor and cell attachments "
        "(SPEC §12); null for notebooks made in Cellar; read-only in the admin.",
    )
    ipynb_sha256 = Varchar(
        length=64,
        null=True,
        default=None,
        help_text="cellar import-ipynb's key of the file (SHA-256 of its name and bytes), "
        "unique per owner, so a re-run skips it; read-only in the admin.",
    )
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    deleted_at = Timestamptz(
        null=True,
        default=None,
        help_text="When the notebook went to the trash (SPEC §13); empty while it is live. "
        "Restore it with the form 'Restore a notebook from the trash'.",
    )

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s", columns=[cls.name])


class CellRun(Table, tablename="cell_runs"):
    """Run state of one cell, written by the execution engine; never touches ``revision``."""

    notebook = ForeignKey(
        references=Notebook,
        on_delete=OnDelete.cascade,
        null=False,
        db_column_name="notebook_id",
    )
    cell_id = Varchar(length=255)
    status = Varchar(length=8, default="idle")
    stdout = Text(default="")
    outputs = JSON(default=[], help_text="List of {mime_type, data, metadata}; stored as text.")
    error = Text(null=True, default=None)
    ipynb = JSON(
        null=True,
        default=None,
        help_text="The imported .ipynb's outputs and execution count, exactly as read; "
        "cleared when the execution engine writes the run (SPEC §12).",
    )
    updated_at = Timestamptz(default=TimestamptzNow())
