"""Shared plumbing of the List use cases: paging rules, the query, and the response page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message as ProtoMessage
from sqlalchemy import ColumnElement, Connection, Table

from assistants_grpc.services.errors import InvalidArgumentError
from assistants_grpc.services.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ForwardListRequest,
    page_request,
)
from assistants_grpc.services.validation import plausible_id
from assistants_grpc.store.repository import UnknownCursorError, fetch_page

Item = TypeVar("Item", bound=ProtoMessage)


class ListResponse(Protocol):
    """The shape of every List*Response: data, first_id, last_id, has_more."""

    first_id: str
    last_id: str
    has_more: bool

    @property
    def data(self) -> Any: ...


R = TypeVar("R", bound=ListResponse)


def list_in(
    connection: Connection,
    request: ForwardListRequest,
    table: Table,
    scope: Sequence[ColumnElement[bool]],
    from_row: Callable[[Any], Item],
    response: R,
    *,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
) -> R:
    """Fill `response` with the page `request` asks for, within one open transaction."""
    paging = page_request(request, default_limit=default_limit, max_limit=max_limit)
    for name, cursor in (("after", paging.after), ("before", paging.before)):
        # A cursor no id can be is no item of any list (and never reaches a query as is).
        if cursor is not None and not plausible_id(cursor):
            raise InvalidArgumentError.single(name, f"no item with id '{cursor}' in this list.")
    try:
        rows, has_more = fetch_page(
            connection,
            table,
            scope,
            limit=paging.limit,
            ascending=paging.ascending,
            after=paging.after,
            before=paging.before,
        )
    except UnknownCursorError as error:
        raise InvalidArgumentError.single(
            error.field, f"no item with id '{error.cursor}' in this list."
        ) from None
    items = [from_row(row) for row in rows]
    response.data.extend(items)
    if items:
        response.first_id = items[0].id  # type: ignore[attr-defined]
        response.last_id = items[-1].id  # type: ignore[attr-defined]
    response.has_more = has_more
    return response


__all__ = ["list_in"]
