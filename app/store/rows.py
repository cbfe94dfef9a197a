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


def _typed(row: type[msgspec.Struct], types: dict[str, str]) -> list[tuple[str, str]]:
    fields = row.__struct_fields__
    if set(types) != set(fields):
        raise ValueError(f"{row.__name__}: give one SQL type per field")
    return [(name, types[name]) for name in fields]


def parameters(row: type[msgspec.Struct], types: dict[str, str], first: int) -> str:
    """``$first::type, …``: one parameter per field of ``row``, in order."""
    return ", ".join(f"${i}::{kind}" for i, (_, kind) in enumerate(_typed(row, types), first))


def unnest(
    row: type[msgspec.Struct],
    types: dict[str, str],
    first: int = 1,
    lead: tuple[tuple[str, str], ...] = (),
) -> str:
    """``unnest($first::type[], …) AS t(field, …)``: one array parameter per field of ``row``.

    ``lead``: (name, type) of columns before the row's, such as the notebook of a run state.
    """
    columns = [*lead, *_typed(row, types)]
    arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(columns, first))
    return f"unnest({arrays}) AS t({', '.join(name for name, _ in columns)})"


def arrays(row: type[msgspec.Struct], rows: Sequence[msgspec.Struct]) -> list[list[Any]]:
    """The arguments of an ``unnest(row, …)`` statement: one list per field."""
    return [[getattr(each, name) for each in rows] for name in row.__struct_fields__]
