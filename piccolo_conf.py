"""Piccolo's configuration: the process's one engine and the app registry.

The database comes from ``app.database.prepare_environment`` — the same
resolution ``cellar serve`` uses — so ``piccolo migrations forwards all``
works against ``DATABASE_URL`` or, without it, the embedded server.
"""

import os

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

from app.database import engine_config, prepare_environment
from app.settings import Settings

DB = PostgresEngine(
    config=engine_config(Settings.from_env(prepare_environment(os.environ))),
    extensions=(),
)

APP_REGISTRY = AppRegistry(
    apps=[
        "app.piccolo_app",
        "piccolo.apps.user.piccolo_app",
        "piccolo_api.session_auth.piccolo_app",
    ]
)
