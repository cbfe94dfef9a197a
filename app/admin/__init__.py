"""The Piccolo admin dashboard at ``/admin/`` (SPEC §7), built once at start-up.

``build_admin(settings)`` makes the one admin ASGI app of an app;
``create_app`` mounts it with Litestar's ``asgi(path="/admin", is_mount=True)``.
The admin queries through Piccolo tables, so it uses the process's one engine
(``piccolo_conf.DB``) and the pool the app's lifespan starts: no second pool,
no second process.  Its parts:

- ``tables``: the admin's twins of our tables (columns named as in the
  database, secret columns left out);
- ``configuration``: what each table shows, filters and orders by, and the
  admin app itself (Piccolo's session login and CSRF, the login limiter);
- ``entry``: the mounted app, which sends a visitor without a session to the
  login page before any page loads;
- ``guards``: what an admin may change (``EDITABLE``), enforced on every save.

Authentication is Piccolo's own: a session cookie from the admin's login
(``piccolo_user`` accounts made by ``cellar create-admin`` or ``piccolo user
create``), double-submit CSRF tokens on every unsafe request, and a login rate
limiter that lives as long as the app because the admin is built once.  The
REST API's bearer tokens mean nothing here and the admin's session cookie means
nothing to the REST API.
"""

from app.admin.configuration import ADMIN_PATH, LOGIN_LIMIT, build_admin
from app.admin.tables import CellRunInAdmin, NotebookInAdmin, UserInAdmin

__all__ = [
    "ADMIN_PATH",
    "LOGIN_LIMIT",
    "CellRunInAdmin",
    "NotebookInAdmin",
    "UserInAdmin",
    "build_admin",
]
