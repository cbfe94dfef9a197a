"""The demo notebook every new user starts with.

The demo is kept as *data* (``demo.json`` next to this module) rather than built in code
so that product people can edit its cells without touching Python, and so that a change
is an explicit, reviewable diff of the content.

Rules for editing ``demo.json``:

* Bump ``demo_version`` whenever the content changes, so the service can tell which
  revision of the template a user's copy was made from.
* Cells carry only ``type`` and ``code``. No ids: each user gets an independent copy
  whose cells receive fresh UUIDs when it is created, so users never share cells and
  later template edits never reach existing copies. No reads/writes either: the server
  computes the variable dependencies of every cell itself.

The file ships inside the package (``[tool.setuptools.package-data]``) and is decoded
once per process (:func:`load_demo` is cached), so nothing is re-read per request.
"""

import functools
from importlib.resources import files

import msgspec

from app.notebooks.schemas import CellType

__all__ = ["DemoCell", "DemoTemplate", "load_demo"]


class DemoCell(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One cell of the template: ``python``, ``sql`` or ``markdown`` source text."""

    type: CellType
    code: str


class DemoTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The demo notebook template as shipped in ``demo.json``."""

    demo_version: int
    name: str
    cells: list[DemoCell]


@functools.cache
def load_demo() -> DemoTemplate:
    """Return the decoded demo template; read from the package once per process.

    The result is shared by every caller: treat it (including ``cells``) as read-only and
    build each user's notebook from it rather than modifying it.
    """
    raw = (files("app.notebooks") / "demo.json").read_bytes()
    return msgspec.json.decode(raw, type=DemoTemplate)
