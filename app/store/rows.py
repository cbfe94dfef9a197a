"""Rows as msgspec Structs: their SELECT lists and array parameters, from their fields.

A row Struct's fields are its columns, in order.  The statement's SELECT
list is generated from them, so ``Row(*record)`` builds the row by position
(no lookups by name: a sixth of the notebook list's CPU once, see
docs/decisions.md "Performance") and the order cannot drift from the
declaration.  A new column is a new field, and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import msgspec


def select_list(row: type[msgspec.Struct], alias: str, **expressions: str) -> str:
    """``row``'s fields in declaration order: ``alias.field``, or ``expression AS field``."""
    fields = row.__struct_fields__
    unknown = set(expressions) - set(fields)
    if unknown:
        raise ValueError(f"{row.__name__} has no field {', '.join(sorted(unknown))}")
    return ", ".join(
        f"{expressions[name]} AS {name}" if name in expressions else f"{alias}.{name}"
        for name in fields
    )


def unnest(row: type[msgspec.Struct], types: dict[str, str], first: int = 1) -> str:
    """``unnest($first::type[], …) AS t(field, …)``: one array parameter per field of ``row``."""
    fields = row.__struct_fields__
    if set(types) != set(fields):
        raise ValueError(f"{row.__name__}: give one SQL type per field")
    arrays = ", ".join(f"${first + i}::{types[name]}[]" for i, name in enumerate(fields))
    return f"unnest({arrays}) AS t({', '.join(fields)})"


def arrays(row: type[msgspec.Struct], rows: Sequence[msgspec.Struct]) -> list[list[Any]]:
    """The arguments of an ``unnest(row, …)`` statement: one list per field."""
    return [[getattr(each, name) for each in rows] for name in row.__struct_fields__]
