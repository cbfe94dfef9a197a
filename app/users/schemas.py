"""Bodies of the user routes: ``Me`` is the users store's row, served as it comes."""

from __future__ import annotations

from app.store.users import Me

__all__ = ["Me"]
