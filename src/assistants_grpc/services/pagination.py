"""List paging as CONTRACT.md §1: `limit` 1..100 (default 20), `order` (default desc), exclusive
`after`/`before` cursors, and pages that report `first_id`/`last_id`/`has_more`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from assistants_grpc.contract.pb import common_pb2
from assistants_grpc.services.errors import FieldViolation, InvalidArgumentError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class ListRequest(Protocol):
    """The paging fields every List*Request has."""

    @property
    def limit(self) -> int: ...
    @property
    def order(self) -> common_pb2.ListOrder.ValueType: ...
    @property
    def after(self) -> str: ...
    @property
    def before(self) -> str: ...
    def HasField(self, field_name: Literal["limit", "after", "before"]) -> bool: ...


@dataclass(frozen=True)
class PageRequest:
    limit: int
    ascending: bool
    after: str | None
    before: str | None


def page_request(request: ListRequest) -> PageRequest:
    violations: list[FieldViolation] = []
    limit = request.limit if request.HasField("limit") else DEFAULT_LIMIT
    if limit < 1:
        violations.append(
            FieldViolation("limit", f"integer below minimum value. Expected >= 1, got {limit}.")
        )
    elif limit > MAX_LIMIT:
        violations.append(
            FieldViolation(
                "limit", f"integer above maximum value. Expected <= {MAX_LIMIT}, got {limit}."
            )
        )
    if request.order not in (
        common_pb2.LIST_ORDER_UNSPECIFIED,
        common_pb2.LIST_ORDER_ASC,
        common_pb2.LIST_ORDER_DESC,
    ):
        violations.append(FieldViolation("order", f"unknown order value {request.order}."))
    after = request.after if request.HasField("after") else None
    before = request.before if request.HasField("before") else None
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None and not cursor:
            violations.append(FieldViolation(name, "must be an object id, not empty."))
    if violations:
        raise InvalidArgumentError(violations)
    return PageRequest(
        limit=limit,
        ascending=request.order == common_pb2.LIST_ORDER_ASC,
        after=after or None,
        before=before or None,
    )


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "PageRequest", "page_request"]
