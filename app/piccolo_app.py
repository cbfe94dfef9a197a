"""The one Piccolo app, ``cellar``: our tables, migrations in the top-level folder.

It depends on Piccolo's ``user`` and ``session_auth`` apps because the admin
dashboard logs in with their tables.
"""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.notebooks.tables import CellRun, Notebook
from app.users.tables import User

APP_CONFIG = AppConfig(
    app_name="cellar",
    migrations_folder_path=str(Path(__file__).resolve().parent.parent / "piccolo_migrations"),
    table_classes=[User, Notebook, CellRun],
    migration_dependencies=[
        "piccolo.apps.user.piccolo_app",
        "piccolo_api.session_auth.piccolo_app",
    ],
    commands=[],
)
