"""One list page of any table, walked by its insertion order (`pk`), as CONTRACT.md §1 asks.

Cursors are object ids; they are resolved to their `pk` within the same scope (a message id of
another thread is not a cursor of this thread's list). Ordering by `pk` rather than `created_at`
keeps a page walk exact when many rows share one second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Table, select


class UnknownCursorError(LookupError):
    """`after` or `before` names no row of the listed scope."""

    def __init__(self, field: str, cursor: str) -> None:
        super().__init__(f"{field}: no item with id {cursor!r} in this list")
        self.field = field
        self.cursor = cursor


def _cursor_pk(
    connection: Connection,
    table: Table,
    scope: Sequence[ColumnElement[bool]],
    field: str,
    cursor: str,
) -> Any:
    pk = connection.execute(select(table.c.pk).where(table.c.id == cursor, *scope)).scalar()
    if pk is None:
        raise UnknownCursorError(field, cursor)
    return pk


def fetch_page(
    connection: Connection,
    table: Table,
    scope: Sequence[ColumnElement[bool]],
    *,
    limit: int,
    ascending: bool,
    after: str | None,
    before: str | None,
) -> tuple[list[RowMapping], bool]:
    """Rows of `table` matching `scope`, one page in the chosen order, and whether more follow."""
    pk = table.c.pk
    conditions = list(scope)
    if after is not None:
        after_pk = _cursor_pk(connection, table, scope, "after", after)
        conditions.append(pk > after_pk if ascending else pk < after_pk)
    if before is not None:
        before_pk = _cursor_pk(connection, table, scope, "before", before)
        conditions.append(pk < before_pk if ascending else pk > before_pk)
    # With only `before`, the page is the one nearest the cursor: walk away from it, then turn
    # the rows back into the chosen order. `has_more` then means more lie further back.
    backwards = before is not None and after is None
    walk_ascending = ascending != backwards
    query = (
        select(table)
        .where(*conditions)
        .order_by(pk.asc() if walk_ascending else pk.desc())
        .limit(limit + 1)
    )
    rows = list(connection.execute(query).mappings())
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return rows, has_more


__all__ = ["UnknownCursorError", "fetch_page"]
